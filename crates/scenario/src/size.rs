//! Byte sizes such as `8G`, `8GiB`, `500MB`, `+16G` or `1073741824`: the one
//! parser behind a scenario's `disk.size` and the CLI's `--size`.
//!
//! ```text
//!   size   = ws* ["+"] digit+ ws* [unit] ws*
//!   unit   = B | K | M | G | T | KiB | MiB | GiB | TiB   (binary: 2^10, 2^20, ...)
//!          | KB | MB | GB | TB                           (decimal: 10^3, 10^6, ...)
//! ```
//!
//! Units are case-insensitive. The grammar is the union of what the CLI's
//! `--size` and the scenario runner's `disk.size` accepted before they
//! shared this parser (the runner also took a leading `+`). The result is
//! bounded: a number or a product past `u64::MAX` is [`SizeErrorKind::TooLarge`].

/// What is wrong with a size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SizeErrorKind {
    /// No digits where the number should be.
    NotANumber,
    /// The unit after the number is not one of the known ones.
    UnknownUnit,
    /// The number, or the number times the unit, does not fit in 64 bits.
    TooLarge,
}

/// A text that is not a byte size.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SizeError {
    /// See [`SizeErrorKind::NotANumber`].
    #[error("`{text}` is not a size (examples: 8G, 500MiB, 4000000000)")]
    NotANumber {
        /// The whole text (trimmed).
        text: String,
    },
    /// See [`SizeErrorKind::UnknownUnit`].
    #[error("unknown size unit `{unit}` in `{text}` (use K, M, G, T, KiB..TiB or KB..TB)")]
    UnknownUnit {
        /// The whole text (trimmed).
        text: String,
        /// The unit, lower-cased.
        unit: String,
    },
    /// See [`SizeErrorKind::TooLarge`].
    #[error("`{text}` is too large")]
    TooLarge {
        /// The whole text (trimmed).
        text: String,
    },
}

impl SizeError {
    /// What is wrong.
    pub fn kind(&self) -> SizeErrorKind {
        match self {
            SizeError::NotANumber { .. } => SizeErrorKind::NotANumber,
            SizeError::UnknownUnit { .. } => SizeErrorKind::UnknownUnit,
            SizeError::TooLarge { .. } => SizeErrorKind::TooLarge,
        }
    }

    /// The text that was parsed (trimmed).
    pub fn text(&self) -> &str {
        match self {
            SizeError::NotANumber { text } | SizeError::UnknownUnit { text, .. } | SizeError::TooLarge { text } => text,
        }
    }
}

/// Parses a byte size: a number with an optional unit. `K/M/G/T` and
/// `KiB/MiB/GiB/TiB` are binary; `KB/MB/GB/TB` are decimal; `B` or no
/// unit is bytes.
///
/// # Errors
/// [`SizeError`] naming the text: no number, an unknown unit, or more than
/// `u64::MAX` bytes.
pub fn parse_size(text: &str) -> Result<u64, SizeError> {
    let text = text.trim();
    let unsigned = text.strip_prefix('+').unwrap_or(text);
    let split = unsigned.find(|c: char| !c.is_ascii_digit()).unwrap_or(unsigned.len());
    let (digits, unit) = unsigned.split_at(split);
    if digits.is_empty() {
        return Err(SizeError::NotANumber { text: text.to_owned() });
    }
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "t" | "tib" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        other => return Err(SizeError::UnknownUnit { text: text.to_owned(), unit: other.to_owned() }),
    };
    // Only ASCII digits are left: parsing fails on overflow alone.
    let number: u64 = digits.parse().map_err(|_| SizeError::TooLarge { text: text.to_owned() })?;
    number.checked_mul(multiplier).ok_or_else(|| SizeError::TooLarge { text: text.to_owned() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(parse_size("8G"), Ok(8 << 30));
        assert_eq!(parse_size("8GiB"), Ok(8 << 30));
        assert_eq!(parse_size("8gib"), Ok(8 << 30));
        assert_eq!(parse_size("500MB"), Ok(500_000_000));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("4096B"), Ok(4096));
        assert_eq!(parse_size("1k"), Ok(1024));
        assert_eq!(parse_size("2T"), Ok(2 << 40));
        assert_eq!(parse_size("3TB"), Ok(3_000_000_000_000));
        assert_eq!(parse_size("8 G"), Ok(8 << 30), "space between number and unit");
        assert_eq!(parse_size("  16G  "), Ok(16 << 30), "surrounding space");
    }

    /// What the scenario runner's own parser accepted: `[+]digits[G|g|M|m]`.
    #[test]
    fn the_runners_old_grammar_still_parses() {
        assert_eq!(parse_size("16G"), Ok(16 << 30));
        assert_eq!(parse_size("16g"), Ok(16 << 30));
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("512m"), Ok(512 << 20));
        assert_eq!(parse_size("1073741824"), Ok(1 << 30));
        assert_eq!(parse_size("+16G"), Ok(16 << 30));
        assert_eq!(parse_size("+4096"), Ok(4096));
        assert_eq!(parse_size("0"), Ok(0));
    }

    #[test]
    fn errors_are_typed_and_name_the_text() {
        let kind = |s: &str| parse_size(s).unwrap_err().kind();
        assert_eq!(kind(""), SizeErrorKind::NotANumber);
        assert_eq!(kind("G"), SizeErrorKind::NotANumber);
        assert_eq!(kind("+"), SizeErrorKind::NotANumber);
        assert_eq!(kind("-1G"), SizeErrorKind::NotANumber);
        assert_eq!(kind("++1"), SizeErrorKind::NotANumber);
        assert_eq!(kind("8X"), SizeErrorKind::UnknownUnit);
        assert_eq!(kind("8.5G"), SizeErrorKind::UnknownUnit);
        assert_eq!(kind("99999999999T"), SizeErrorKind::TooLarge);
        assert_eq!(kind("18446744073709551616"), SizeErrorKind::TooLarge);
        assert_eq!(kind("17179869184G"), SizeErrorKind::TooLarge);
        assert_eq!(parse_size("18446744073709551615"), Ok(u64::MAX));
        assert_eq!(
            parse_size("8X").unwrap_err().to_string(),
            "unknown size unit `x` in `8X` (use K, M, G, T, KiB..TiB or KB..TB)"
        );
        assert_eq!(parse_size(" x ").unwrap_err().to_string(), "`x` is not a size (examples: 8G, 500MiB, 4000000000)");
        assert_eq!(parse_size("99999999999T").unwrap_err().to_string(), "`99999999999T` is too large");
    }
}
