//! `visorsim host ...`: drive a host on an image of your own, one step per
//! invocation. The disk is the image; the RAM-side state (clock, `/etc`,
//! what is running, the timeline) lives in a sidecar `<image>.host.json`,
//! written atomically after every step, with the image's identity
//! ([`DiskIdentity`]: its size, partition table and the banks' boot.cfg),
//! recomputed after every step, so a sidecar left beside an image that was
//! rebuilt or changed by another tool is refused instead of trusted.
//!
//! The step names are the scenario files' names in kebab-case
//! (`set-hostname`/`set_hostname`, `configure`, `power-cut`...), and the
//! boot flags are `visorsim boot`'s (`--shift-r`, `--shift-r-in-mboot`,
//! `--answer`, `--json`); the old names `config` and `power-off` still
//! work, with a note on stderr.

use std::fs;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use serde::{Deserialize, Serialize};
use visorsim_disk::{BlockDevice, FileDisk};
use visorsim_host::clock::SimTime;
use visorsim_host::host::{bank_summaries, DiskIdentity, Host, HostBootOptions, HostError, HostErrorKind, HostState};
use visorsim_image::payload::default_cache_dir;
use visorsim_image::system::{ImageSpec, PayloadSize, SystemImage};

use crate::args::LoaderFlags;
use crate::failure::{Context, Failure, Status};

/// Arguments of `visorsim host`.
#[derive(Args, Debug)]
pub struct HostArgs {
    /// Raw disk image of the host's boot device.
    image: PathBuf,
    #[command(subcommand)]
    step: Step,
}

/// How a boot goes: `visorsim boot`'s flags, plus the host's own.
#[derive(Args, Debug)]
struct BootFlags {
    #[command(flatten)]
    loader: LoaderFlags,
    /// The boot device is claimed too late: banks live in RAM.
    #[arg(long)]
    device_late: bool,
    /// The host crashes before jumpstart confirms a trial boot.
    #[arg(long)]
    crash_before_confirm: bool,
    /// Print the boot report as JSON (as `visorsim boot --json`) instead of the timeline.
    #[arg(long)]
    json: bool,
}

impl BootFlags {
    fn options(&self) -> HostBootOptions {
        HostBootOptions {
            loader: self.loader.boot_options(),
            device_claimed_late: self.device_late,
            crash_before_confirm: self.crash_before_confirm,
            ..Default::default()
        }
    }
}

/// `configure KEY VALUE`.
#[derive(Args, Debug)]
struct ConfigureArgs {
    /// Key, e.g. /net/vswitch/child[0000]/mtu.
    key: String,
    /// Value.
    value: String,
}

#[derive(Subcommand, Debug)]
enum Step {
    /// Power on: the bootloader runs, then the host comes up (refused while it runs, unless --power-cycle).
    Boot {
        #[command(flatten)]
        flags: BootFlags,
        /// The host is running: cut its power first (a power-off in the timeline), then boot.
        #[arg(long)]
        power_cycle: bool,
    },
    /// Set the host name (RAM only until the next backup).
    SetHostname {
        /// The new name.
        name: String,
    },
    /// Set an /etc/vmware/esx.conf key (RAM only until the next backup).
    Configure(ConfigureArgs),
    /// Deprecated spelling of `configure`.
    #[command(hide = true)]
    Config(ConfigureArgs),
    /// Set an advanced option, e.g. Misc.HostName.
    Advanced {
        /// Name.
        name: String,
        /// Value.
        value: String,
    },
    /// Change a user's password.
    Password {
        /// User.
        user: String,
        /// Password.
        password: String,
    },
    /// Let time pass (e.g. 59m, 2h): cron runs auto-backup.sh at minute 1 of every hour.
    Advance {
        /// How long: 59m, 2h, 1h30m, 1d.
        #[arg(value_parser = parse_duration)]
        duration: u64,
    },
    /// Run /sbin/backup.sh 0 now.
    Backup,
    /// Install a new build into /altbootbank (esxcli software profile update).
    Upgrade {
        /// Build number of the new image.
        #[arg(long, default_value_t = 9999999)]
        build_number: u32,
        /// Version string (default: the running build's, e.g. 7.0.3 on an ESXi 7 host).
        #[arg(long)]
        version: Option<String>,
        /// Seed of the new image.
        #[arg(long, default_value_t = 2)]
        seed: u64,
        /// Compressed size of s.v00 in MB.
        #[arg(long, default_value_t = 1)]
        payload_mb: u64,
        /// Corrupt this module of the new image (e.g. s.v00).
        #[arg(long)]
        broken: Option<String>,
    },
    /// Orderly reboot (shutdown.sh runs backup.sh 1), then boot.
    Reboot {
        #[command(flatten)]
        flags: BootFlags,
    },
    /// Orderly shutdown.
    Shutdown,
    /// Power loss: nothing is saved.
    PowerCut,
    /// Deprecated spelling of `power-cut`.
    #[command(hide = true)]
    PowerOff,
    /// The boot device disappears while running.
    LoseDevice,
    /// Show the host's state and timeline.
    Status {
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `advance`'s duration, as a clap value parser (a bad one is a usage error).
fn parse_duration(text: &str) -> Result<u64, String> {
    SimTime::parse_duration(text).map_err(|e| e.to_string())
}

/// What `<image>.host.json` holds: the host, and the image it belongs to.
#[derive(Serialize, Deserialize)]
struct Sidecar {
    #[serde(flatten)]
    host: HostState,
    /// The image's identity after the last step (absent in sidecars
    /// written before it was recorded: those are trusted once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    image: Option<DiskIdentity>,
}

fn sidecar(image: &Path) -> PathBuf {
    let mut name = image.file_name().unwrap_or_default().to_os_string();
    name.push(".host.json");
    image.with_file_name(name)
}

/// The host saved beside `image` and the identity of the image it was
/// saved with; a powered-off host at time zero when there is none.
fn load(image: &Path) -> Result<(Host, Option<DiskIdentity>), Failure> {
    let path = sidecar(image);
    match fs::read(&path) {
        Ok(bytes) => serde_json::from_slice::<Sidecar>(&bytes)
            .map(|saved| (Host::restore(&saved.host), saved.image))
            .context(|| format!("Reading {}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((new_host(), None)),
        Err(e) => Err(Failure::with(format!("Reading {}", path.display()), e)),
    }
}

fn new_host() -> Host {
    Host::new(1, SimTime::default())
}

fn save(image: &Path, host: &Host, identity: DiskIdentity) -> Result<(), Failure> {
    let path = sidecar(image);
    let tmp = path.with_extension("json.tmp");
    let saved = Sidecar { host: host.save(), image: Some(identity) };
    fs::write(&tmp, serde_json::to_vec_pretty(&saved).expect("serialisable"))
        .context(|| format!("Writing {}", tmp.display()))?;
    fs::rename(&tmp, &path).context(|| format!("Renaming into {}", path.display()))
}

fn print_events(host: &Host, from: usize) {
    for e in &host.timeline()[from..] {
        println!("{}  {:<11} {}", e.time.rfc3339(), e.kind, e.text);
    }
}

/// Runs one host step.
pub fn run(args: HostArgs) -> Result<Status, Failure> {
    let image = &args.image;
    // A vmdk or qcow2 would be booted on a temporary copy, and the next
    // step would find none of this one's writes: refused, naming `import`.
    crate::image_open::require_raw(image, "host")?;
    let (mut host, recorded) = load(image)?;
    // 512-byte or 4Kn, as the image's GPT header says.
    let sector_size = crate::args::SectorSizeArg::resolve(None, image);
    let mut disk = FileDisk::open(image, sector_size).context(|| format!("Opening {}", image.display()))?;
    let current = DiskIdentity::of(&mut disk);
    if let Some(recorded) = recorded.filter(|r| *r != current) {
        let sidecar = sidecar(image);
        if !matches!(args.step, Step::Boot { .. }) {
            let differences = recorded.differences(&current);
            return Err(Failure::msg(format!(
                "{} belongs to another image ({} {}: saved with {recorded}; {} is {current}): the image was \
                 rebuilt or changed by another tool; remove {} or run `visorsim host {} boot` to start a new host on \
                 this image",
                sidecar.display(),
                differences.join(", "),
                if differences.len() == 1 { "differs" } else { "differ" },
                image.display(),
                sidecar.display(),
                image.display()
            )));
        }
        eprintln!(
            "visorsim: note: {} belonged to another image (saved with {recorded}); starting a new host on {}",
            sidecar.display(),
            image.display()
        );
        host = new_host();
    }
    let deprecated = |old: &str, new: &str| {
        eprintln!("visorsim: note: `host IMAGE {old}` is deprecated; use `host IMAGE {new}`");
    };
    let before = host.timeline().len();
    let mut status = Status::Success;
    let mut quiet = false;
    let result: Result<(), HostError> = match args.step {
        Step::Boot { flags, power_cycle } => {
            if let Some(r) = host.running() {
                if !power_cycle {
                    return Err(Failure::msg(format!(
                        "the host is running (BANK{} build {}): `boot` would power-cycle it and lose what is only \
                         in RAM; use `visorsim host {img} reboot` (orderly, backup.sh 1), `power-cut` then `boot`, \
                         or `boot --power-cycle`",
                        r.bank,
                        r.build,
                        img = image.display()
                    )));
                }
                host.power_off();
            }
            let report = host.boot(&mut disk, &flags.options(), None);
            status = Status::of_boot(&report.outcome);
            quiet = print_report(&flags, &report);
            Ok(())
        }
        Step::SetHostname { name } => host.set_hostname(&name),
        Step::Configure(c) => host.config_set(&c.key, &c.value),
        Step::Config(c) => {
            deprecated("config", "configure");
            host.config_set(&c.key, &c.value)
        }
        Step::Advanced { name, value } => host.advanced_set(&name, &value),
        Step::Password { user, password } => host.set_password(&user, &password),
        Step::Advance { duration } => {
            host.advance(&mut disk, duration);
            Ok(())
        }
        Step::Backup => host.backup(&mut disk, false),
        Step::Upgrade { build_number, version, seed, payload_mb, broken } => {
            let version = version
                .unwrap_or_else(|| host.running().and_then(|r| r.version()).unwrap_or(DEFAULT_VERSION).to_owned());
            let spec = ImageSpec {
                version,
                build_number,
                seed,
                payload: PayloadSize::Compressed(payload_mb * 1_000_000),
                hostname: "esxi-01".into(),
            };
            let mut image = SystemImage::build(&spec, default_cache_dir().as_deref(), &mut |_, _| {})
                .context(|| "Building the new image".into())?;
            if let Some(name) = broken {
                break_module(&mut image, &name)?;
            }
            host.upgrade(&mut disk, &image)
        }
        Step::Reboot { flags } => {
            let (report, shutdown) = host.reboot_keeping_error(&mut disk, &flags.options(), None);
            // The host boots whatever its shutdown backup did (shutdown.sh
            // goes on after backup.sh 1 fails), so the failure is told, not
            // turned into this step's exit status; from a host that was
            // off nothing ran before the boot.
            match shutdown {
                Err(e) if e.kind() != HostErrorKind::NotRunning => {
                    eprintln!("warning: the shutdown backup failed, the host rebooted anyway: {}", e.with_causes())
                }
                _ => {}
            }
            status = Status::of_boot(&report.outcome);
            quiet = print_report(&flags, &report);
            Ok(())
        }
        Step::Shutdown => host.shutdown(&mut disk),
        Step::PowerCut => {
            host.power_off();
            Ok(())
        }
        Step::PowerOff => {
            deprecated("power-off", "power-cut");
            host.power_off();
            Ok(())
        }
        Step::LoseDevice => {
            host.lose_boot_device();
            Ok(())
        }
        Step::Status { json } => {
            let banks = bank_summaries(&mut disk);
            if json {
                let value = serde_json::json!({ "host": host.save(), "banks": banks, "image": current });
                println!("{}", serde_json::to_string_pretty(&value).expect("serialisable"));
            } else {
                println!("time     {}", host.now().rfc3339());
                match host.running() {
                    Some(r) => println!(
                        "running  BANK{} build {} (hostname {})",
                        r.bank,
                        r.build,
                        host.etc().hostname().unwrap_or_default()
                    ),
                    None => println!("running  nothing (powered off)"),
                }
                println!("banks    {}", banks.iter().map(|b| b.short()).collect::<Vec<_>>().join("  "));
                for e in host.timeline() {
                    println!("  {}  {:<11} {}", e.time.rfc3339(), e.kind, e.text);
                }
            }
            return Ok(Status::Success);
        }
    };
    disk.flush().context(|| format!("Syncing {}", image.display()))?;
    // The identity after this step's own writes: only someone else's
    // change between two steps makes the sidecar stale.
    save(image, &host, DiskIdentity::of(&mut disk))?;
    if !quiet {
        print_events(&host, before);
    }
    // The host's error says what failed and where (its alert is in the
    // timeline just printed); the step is the one on the command line.
    result.map(|()| status).map_err(|e| Failure::msg(e.with_causes()))
}

/// The version of an upgrade's image when neither `--version` nor a
/// running build says one.
const DEFAULT_VERSION: &str = "6.7.0";

/// With `--json`, prints the boot report (and the caller skips the
/// timeline lines); returns whether it did.
fn print_report(flags: &BootFlags, report: &visorsim_boot::boot::BootReport) -> bool {
    if flags.json {
        println!("{}", serde_json::to_string_pretty(report).expect("serialisable"));
    }
    flags.json
}

/// Corrupts a module of an image (flips a byte of its deflate data).
pub fn break_module(image: &mut SystemImage, name: &str) -> Result<(), Failure> {
    let file = image
        .files
        .iter_mut()
        .find(|f| f.name == name)
        .ok_or_else(|| Failure::msg(format!("the image has no module {name}")))?;
    let n = file.data.len();
    file.data[n / 2] ^= 0xFF;
    file.data[n - 8] ^= 0xFF;
    Ok(())
}
