//! Range checks on the numbers of a scenario file, applied while the file
//! is read (each is a serde `deserialize_with` of [`crate::model`]), so an
//! out-of-range value is a `file:line:column` error like an unknown field,
//! never an allocation, an overflow or a hang later in the run.
//!
//! Every bound is stated here, with why it is where it is:
//!
//! | field | accepted | why |
//! |---|---|---|
//! | `disk.payload_mb` | more than 0, at most [`MAX_PAYLOAD_MB`] | the largest bank (ESXi 7 on 32 GiB media) is 4 GiB |
//! | `disk.size` | a size, at most [`MAX_DISK_BYTES`] | visorsim's limit for an emulated boot device |
//! | `disk.ram` | a size from [`MIN_RAM_BYTES`] to [`MAX_RAM_BYTES`] | the host's memory budget (see docs/host.md) |
//! | `upgrade.extra_mb` | at most [`MAX_EXTRA_MB`] | more than the largest bank can hold: too large for every layout |
//! | `corrupt.fill.count` | 1 to [`MAX_FILL_SECTORS`] | twice the largest bank in 512-byte sectors |
//! | `fault.volatile_cache_reorder` | at most [`MAX_REORDER`] | a cache that reorders more writes than that is not a disk cache |
//! | `bank` of a file reference | 1 to 128 | GPT entry numbers |
//! | partition keys of `expect` maps | 1 to 128 | GPT entry numbers |
//! | `corrupt.bytes`, `corrupt.text` | 1 to [`MAX_CORRUPT_BYTES`] bytes; `bytes` pairs of hex digits | a patch, not a file's worth of data |
//! | `expect.files.*.sha256` | 64 hex digits | a SHA-256 |
//! | `advance` | a duration (`59m`, `2h`, `100000000d`) | parsed now, so a typo names its line |
//!
//! The other numbers (seeds, build numbers, LBAs, offsets, write counts)
//! are used as they are: any value of their type is meaningful or is
//! checked against the disk when the step runs.

use serde::de::{self, Deserializer};
use serde::Deserialize;
use visorsim_host::clock::SimTime;

use crate::size::parse_size;

/// Largest `disk.payload_mb`.
pub const MAX_PAYLOAD_MB: f64 = 4096.0;
/// Largest `disk.size`: 16 TiB.
pub const MAX_DISK_BYTES: u64 = 16 << 40;
/// Smallest `disk.ram`: 64 MiB.
pub const MIN_RAM_BYTES: u64 = 64 << 20;
/// Largest `disk.ram`: 1 TiB.
pub const MAX_RAM_BYTES: u64 = 1 << 40;
/// Largest `upgrade.extra_mb`: 4,400 MB, more than the largest bank (4 GiB).
pub const MAX_EXTRA_MB: u64 = 4400;
/// Largest `corrupt.fill.count`: 2^24 sectors (8 GiB of 512-byte sectors).
pub const MAX_FILL_SECTORS: u64 = 1 << 24;
/// Largest `fault.volatile_cache_reorder`.
pub const MAX_REORDER: usize = 1 << 20;
/// Largest `corrupt.bytes` / `corrupt.text`: 1 MiB.
pub const MAX_CORRUPT_BYTES: usize = 1 << 20;

fn out_of_range<E: de::Error>(field: &str, value: impl std::fmt::Display, range: &str) -> E {
    E::custom(format_args!("{field}: {value} is out of range ({range})"))
}

/// `disk.payload_mb`.
pub(crate) fn payload_mb<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    let mb = f64::deserialize(d)?;
    if !mb.is_finite() || mb <= 0.0 || mb > MAX_PAYLOAD_MB {
        return Err(out_of_range(
            "disk.payload_mb",
            format!("{mb:?}"),
            &format!("more than 0, at most {MAX_PAYLOAD_MB}"),
        ));
    }
    Ok(mb)
}

/// `disk.size`: a size such as `"16G"`, checked now and kept as written.
pub(crate) fn disk_size<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let Some(text) = Option::<String>::deserialize(d)? else { return Ok(None) };
    let bytes = parse_size(&text).map_err(|e| de::Error::custom(format_args!("disk.size: {e}")))?;
    if bytes > MAX_DISK_BYTES {
        return Err(out_of_range("disk.size", format!("{text:?}"), "at most 16T"));
    }
    Ok(Some(text))
}

/// `disk.ram`: a size such as `"4G"`, in bytes.
pub(crate) fn ram<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let Some(text) = Option::<String>::deserialize(d)? else { return Ok(None) };
    let bytes = parse_size(&text).map_err(|e| de::Error::custom(format_args!("disk.ram: {e}")))?;
    if !(MIN_RAM_BYTES..=MAX_RAM_BYTES).contains(&bytes) {
        return Err(out_of_range("disk.ram", format!("{text:?}"), "64M to 1T"));
    }
    Ok(Some(bytes))
}

/// `upgrade.extra_mb`.
pub(crate) fn extra_mb<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let mb = u64::deserialize(d)?;
    if mb > MAX_EXTRA_MB {
        return Err(out_of_range("upgrade.extra_mb", mb, &format!("at most {MAX_EXTRA_MB}")));
    }
    Ok(mb)
}

/// `corrupt.fill.count`.
pub(crate) fn fill_count<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let n = u64::deserialize(d)?;
    if !(1..=MAX_FILL_SECTORS).contains(&n) {
        return Err(out_of_range("corrupt.fill.count", n, &format!("1 to {MAX_FILL_SECTORS} sectors")));
    }
    Ok(n)
}

/// `fault.volatile_cache_reorder`.
pub(crate) fn reorder<'de, D: Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
    let n = Option::<usize>::deserialize(d)?;
    match n {
        Some(n) if n > MAX_REORDER => {
            Err(out_of_range("fault.volatile_cache_reorder", n, &format!("at most {MAX_REORDER}")))
        }
        n => Ok(n),
    }
}

/// The `bank` of a file reference: a GPT partition number.
pub(crate) fn bank<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let n = u32::deserialize(d)?;
    if !(1..=128).contains(&n) {
        return Err(out_of_range("bank", n, "a partition number, 1 to 128"));
    }
    Ok(n)
}

/// A partition number written as a map key (`expect.bank_states`,
/// `expect.files`...): 1 to 128. `field` names the key in the error.
pub(crate) fn partition_key(key: &str, field: &str) -> Result<u32, String> {
    let n = key.parse::<u32>().map_err(|_| format!("{field}: `{key}` is not a partition number"))?;
    if !(1..=128).contains(&n) {
        return Err(format!("{field}: {n} is out of range (a partition number, 1 to 128)"));
    }
    Ok(n)
}

/// `corrupt.bytes`: hex digit pairs (spaces between bytes allowed), 1 to
/// [`MAX_CORRUPT_BYTES`] bytes.
pub(crate) fn corrupt_bytes<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
    let Some(text) = Option::<String>::deserialize(d)? else { return Ok(None) };
    let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if let Some(bad) = digits.iter().position(|b| !b.is_ascii_hexdigit()) {
        let c = char::from(digits[bad]);
        return Err(de::Error::custom(format_args!(
            "corrupt.bytes: {c:?} is not a hex digit (give bytes as \"00ff\")"
        )));
    }
    if digits.len() % 2 == 1 {
        return Err(de::Error::custom(format_args!(
            "corrupt.bytes: {} hex digit(s) is not a whole number of bytes",
            digits.len()
        )));
    }
    check_patch_len("corrupt.bytes", digits.len() / 2)?;
    let nibble = |b: u8| (b as char).to_digit(16).unwrap_or(0) as u8;
    Ok(Some(digits.chunks(2).map(|p| nibble(p[0]) << 4 | nibble(p[1])).collect()))
}

/// `corrupt.text`: 1 to [`MAX_CORRUPT_BYTES`] bytes of UTF-8.
pub(crate) fn corrupt_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let Some(text) = Option::<String>::deserialize(d)? else { return Ok(None) };
    check_patch_len("corrupt.text", text.len())?;
    Ok(Some(text))
}

fn check_patch_len<E: de::Error>(field: &str, len: usize) -> Result<(), E> {
    if !(1..=MAX_CORRUPT_BYTES).contains(&len) {
        return Err(out_of_range(field, format!("{len} byte(s)"), &format!("1 to {MAX_CORRUPT_BYTES} bytes")));
    }
    Ok(())
}

/// `expect.files.*.sha256`: 64 hex digits, kept in lower case.
pub(crate) fn sha256<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let Some(text) = Option::<String>::deserialize(d)? else { return Ok(None) };
    if text.len() != 64 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(de::Error::custom(format_args!("sha256: {text:?} is not 64 hex digits")));
    }
    Ok(Some(text.to_ascii_lowercase()))
}

/// `advance`: a duration, checked now and kept as written.
pub(crate) fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let text = String::deserialize(d)?;
    SimTime::parse_duration(&text).map_err(|e| de::Error::custom(format_args!("advance: {e}")))?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use crate::model::parse;

    /// The error of a scenario whose only step is `step` (disk `disk`).
    fn error(disk: &str, step: &str) -> String {
        let text = format!("{{\n  \"disk\": {disk},\n  \"steps\": [\n    {step}\n  ]\n}}");
        parse(&text, "s.json").expect_err(&text).to_string()
    }

    #[test]
    fn every_bounded_number_is_refused_with_its_line_and_column() {
        for (disk, step, line, says) in [
            (r#"{"payload_mb": 1e300}"#, r#""power_cut""#, 2, "disk.payload_mb: 1e300 is out of range"),
            (r#"{"payload_mb": -1}"#, r#""power_cut""#, 2, "disk.payload_mb: -1.0 is out of range"),
            (r#"{"payload_mb": 0}"#, r#""power_cut""#, 2, "disk.payload_mb: 0.0 is out of range"),
            (r#"{"size": "99999T"}"#, r#""power_cut""#, 2, "disk.size: \"99999T\" is out of range"),
            (r#"{"size": "lots"}"#, r#""power_cut""#, 2, "disk.size: `lots` is not a size"),
            (r#"{"ram": "1K"}"#, r#""power_cut""#, 2, "disk.ram: \"1K\" is out of range"),
            ("{}", r#"{"upgrade": {"build_number": 2, "extra_mb": 18446744073709551}}"#, 4, "upgrade.extra_mb"),
            ("{}", r#"{"corrupt": {"fill": {"lba": 1, "count": 99999999999, "byte": 0}}}"#, 4, "corrupt.fill.count"),
            ("{}", r#"{"corrupt": {"fill": {"lba": 1, "count": 0, "byte": 0}}}"#, 4, "corrupt.fill.count: 0"),
            ("{}", r#"{"fault": {"volatile_cache_reorder": 99999999999}}"#, 4, "fault.volatile_cache_reorder"),
            ("{}", r#"{"fault": {"bit_rot": {"bank": 0, "file": "s.v00"}}}"#, 4, "bank: 0 is out of range"),
            ("{}", r#"{"corrupt": {"file": {"bank": 4000000, "file": "x"}}}"#, 4, "bank: 4000000 is out"),
            ("{}", r#"{"advance": "1y"}"#, 4, "advance: "),
        ] {
            let err = error(disk, step);
            assert!(err.starts_with(&format!("s.json:{line}:")), "{err}");
            assert!(err.contains(says), "{says:?} in {err}");
        }
    }

    #[test]
    fn values_in_range_load() {
        let s = parse(
            r#"{"disk": {"payload_mb": 4096, "size": "16T", "ram": "4G"}, "steps": [
                {"upgrade": {"build_number": 2, "extra_mb": 4400}},
                {"corrupt": {"fill": {"lba": 1, "count": 16777216, "byte": 0}}},
                {"advance": "100000000d"}]}"#,
            "x",
        )
        .unwrap();
        assert_eq!(s.disk.ram, Some(4 << 30));
    }
}
