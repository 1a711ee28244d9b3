//! The kernel command line (`/chosen/bootargs`) as the client reads it: space-separated
//! words; `key=value` options; `client.*` options addressed to the client by the test.

/// The words of `bootargs`, split at ASCII whitespace, empty ones skipped.
pub fn words(bootargs: &[u8]) -> impl Iterator<Item = &[u8]> {
    bootargs
        .split(|byte| byte.is_ascii_whitespace())
        .filter(|word| !word.is_empty())
}

/// The first word that starts with `prefix`.
pub fn word_with_prefix<'a>(bootargs: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    words(bootargs).find(|word| word.starts_with(prefix))
}

/// The value of the last `key` option (`key` includes the `=`), like the kernel, where a
/// later option overrides an earlier one.
pub fn value_of<'a>(bootargs: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    words(bootargs)
        .filter_map(|word| word.strip_prefix(key))
        .last()
}

/// A 32-bit number in hex, with or without `0x`: 1 to 8 hex digits, nothing else.
pub fn parse_hex_u32(text: &[u8]) -> Option<u32> {
    let digits = text
        .strip_prefix(b"0x")
        .or_else(|| text.strip_prefix(b"0X"))
        .unwrap_or(text);
    if digits.is_empty() || digits.len() > 8 {
        return None;
    }
    digits.iter().try_fold(0u32, |value, &digit| {
        let nibble = char::from(digit).to_digit(16)?;
        Some(value << 4 | nibble)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_words_and_values() {
        let args = b"  console=ttyAMA0\tclient.initrd_crc=0x1234 client.initrd_crc=0xabcd  ";
        assert_eq!(words(args).count(), 3);
        assert_eq!(value_of(args, b"client.initrd_crc="), Some(&b"0xabcd"[..]));
        assert_eq!(value_of(args, b"console="), Some(&b"ttyAMA0"[..]));
        assert_eq!(value_of(args, b"root="), None);
        assert_eq!(value_of(b"xconsole=1", b"console="), None);
    }

    #[test]
    fn finds_prefixed_words() {
        assert_eq!(
            word_with_prefix(b"console=ttyAMA0 hypstub.el=1 quiet", b"hypstub."),
            Some(&b"hypstub.el=1"[..])
        );
        assert_eq!(
            word_with_prefix(b"xhypstub.el=1 hypstub", b"hypstub."),
            None
        );
        assert_eq!(word_with_prefix(b"", b"hypstub."), None);
    }

    #[test]
    fn parses_hex() {
        assert_eq!(parse_hex_u32(b"0xE3069283"), Some(0xe306_9283));
        assert_eq!(parse_hex_u32(b"e3069283"), Some(0xe306_9283));
        assert_eq!(parse_hex_u32(b"0X0"), Some(0));
        assert_eq!(parse_hex_u32(b"0x"), None);
        assert_eq!(parse_hex_u32(b""), None);
        assert_eq!(parse_hex_u32(b"0x123456789"), None);
        assert_eq!(parse_hex_u32(b"0x12g4"), None);
        assert_eq!(parse_hex_u32(b"+12"), None);
    }
}
