//! `visorsim host ...`: drive a host on an image of your own, one step per
//! invocation. The disk is the image; the RAM-side state (clock, `/etc`,
//! what is running, the timeline) lives in a sidecar `<image>.host.json`,
//! written atomically after every step.

use std::fs;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use visorsim_boot::boot::{BootOptions, ShiftR};
use visorsim_boot::safeboot::Answer;
use visorsim_disk::{BlockDevice, FileDisk, SectorSize};
use visorsim_host::clock::SimTime;
use visorsim_host::host::{bank_summaries, Host, HostBootOptions, HostError, HostState};
use visorsim_image::payload::default_cache_dir;
use visorsim_image::system::{ImageSpec, PayloadSize, SystemImage};

use crate::failure::{Context, Failure, Status};

/// Arguments of `visorsim host`.
#[derive(Args, Debug)]
pub struct HostArgs {
    /// Raw disk image of the host's boot device.
    image: PathBuf,
    #[command(subcommand)]
    step: Step,
}

#[derive(Subcommand, Debug)]
enum Step {
    /// Power on: the bootloader runs, then the host comes up.
    Boot {
        /// Hold Shift+R at safeboot.
        #[arg(long)]
        shift_r: bool,
        /// Press Shift+R during mboot's countdown.
        #[arg(long, conflicts_with = "shift_r")]
        shift_r_in_mboot: bool,
        /// safeboot's -f.
        #[arg(long)]
        fake_write_error: bool,
        /// The boot device is claimed too late: banks live in RAM.
        #[arg(long)]
        device_late: bool,
    },
    /// Set the host name (RAM only until the next backup).
    SetHostname {
        /// The new name.
        name: String,
    },
    /// Set an /etc/vmware/esx.conf key (RAM only until the next backup).
    Config {
        /// Key, e.g. /net/vswitch/child[0000]/mtu.
        key: String,
        /// Value.
        value: String,
    },
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
        /// Duration.
        duration: String,
    },
    /// Run /sbin/backup.sh 0 now.
    Backup,
    /// Install a new build into /altbootbank (esxcli software profile update).
    Upgrade {
        /// Build number of the new image.
        #[arg(long, default_value_t = 9999999)]
        build_number: u32,
        /// Version string.
        #[arg(long, default_value = "6.7.0")]
        version: String,
        /// Seed of the new image.
        #[arg(long, default_value_t = 2)]
        seed: u64,
        /// Compressed size of s.v00 in MB.
        #[arg(long, default_value_t = 4)]
        payload_mb: u64,
        /// Corrupt this module of the new image (e.g. s.v00).
        #[arg(long)]
        broken: Option<String>,
    },
    /// Orderly reboot (shutdown.sh runs backup.sh 1).
    Reboot,
    /// Orderly shutdown.
    Shutdown,
    /// Power loss: nothing is saved.
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

fn sidecar(image: &Path) -> PathBuf {
    let mut name = image.file_name().unwrap_or_default().to_os_string();
    name.push(".host.json");
    image.with_file_name(name)
}

fn load(image: &Path) -> Result<Host, Failure> {
    let path = sidecar(image);
    match fs::read(&path) {
        Ok(bytes) => serde_json::from_slice::<HostState>(&bytes)
            .map(|state| Host::restore(&state))
            .context(|| format!("Reading {}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Host::new(1, SimTime::default())),
        Err(e) => Err(Failure::with(format!("Reading {}", path.display()), e)),
    }
}

fn save(image: &Path, host: &Host) -> Result<(), Failure> {
    let path = sidecar(image);
    let tmp = path.with_extension("json.tmp");
    fs::write(&tmp, serde_json::to_vec_pretty(&host.save()).expect("serialisable"))
        .context(|| format!("Writing {}", tmp.display()))?;
    fs::rename(&tmp, &path).context(|| format!("Renaming into {}", path.display()))
}

/// Runs one host step.
pub fn run(args: HostArgs) -> Result<Status, Failure> {
    let mut host = load(&args.image)?;
    let mut disk =
        FileDisk::open(&args.image, SectorSize::S512).context(|| format!("Opening {}", args.image.display()))?;
    let before = host.timeline().len();
    let mut status = Status::Success;
    let result: Result<(), HostError> = match args.step {
        Step::Boot { shift_r, shift_r_in_mboot, fake_write_error, device_late } => {
            let shift = if shift_r {
                ShiftR::AtSafeboot(Answer::Yes)
            } else if shift_r_in_mboot {
                ShiftR::InMboot(Answer::Yes)
            } else {
                ShiftR::None
            };
            let options = HostBootOptions {
                loader: BootOptions { shift_r: shift, fake_write_error, ..Default::default() },
                device_claimed_late: device_late,
                crash_before_confirm: false,
            };
            let report = host.boot(&mut disk, &options, None);
            status = Status::of_boot(&report.outcome);
            Ok(())
        }
        Step::SetHostname { name } => host.set_hostname(&name),
        Step::Config { key, value } => host.config_set(&key, &value),
        Step::Advanced { name, value } => host.advanced_set(&name, &value),
        Step::Password { user, password } => host.set_password(&user, &password),
        Step::Advance { duration } => {
            let seconds = SimTime::parse_duration(&duration).map_err(|e| Failure::msg(format!("--duration: {e}")))?;
            host.advance(&mut disk, seconds);
            Ok(())
        }
        Step::Backup => host.backup(&mut disk, false),
        Step::Upgrade { build_number, version, seed, payload_mb, broken } => {
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
        Step::Reboot => {
            let report = host.reboot(&mut disk, &HostBootOptions::default(), None);
            status = Status::of_boot(&report.outcome);
            Ok(())
        }
        Step::Shutdown => host.shutdown(&mut disk),
        Step::PowerOff => {
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
                let value = serde_json::json!({ "host": host.save(), "banks": banks });
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
    disk.flush().context(|| format!("Syncing {}", args.image.display()))?;
    save(&args.image, &host)?;
    for e in &host.timeline()[before..] {
        println!("{}  {:<11} {}", e.time.rfc3339(), e.kind, e.text);
    }
    // The host's error says what failed (its alert is in the timeline just
    // printed); the step is the one on the command line.
    result.map(|()| status).map_err(|e| Failure::msg(e.to_string()))
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
