//! Command-line scanning shared by the request and response parsers: finding the line end,
//! splitting words, and memcached's number rules.

/// Where one `\n`-terminated line sits at the front of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Line<'a> {
    /// The line without its `\n` and without one trailing `\r`.
    pub text: &'a [u8],
    /// Bytes the line occupies including its terminator.
    pub consumed: usize,
}

/// Finds the first line in `buf`, looking at no more than `window` bytes (so a client that never
/// sends a newline costs a bounded scan). `None` when no `\n` is within the window.
pub(crate) fn find_line(buf: &[u8], window: usize) -> Option<Line<'_>> {
    let scan = &buf[..buf.len().min(window)];
    let nl = memchr::memchr(b'\n', scan)?;
    let mut text = &buf[..nl];
    // memcached strips one `\r` before the `\n` and accepts a bare `\n` as well.
    if let [rest @ .., b'\r'] = text {
        text = rest;
    }
    Some(Line {
        text,
        consumed: nl + 1,
    })
}

/// The most words any non-`get` command takes (`cas` with `noreply` has 7); one more is kept so
/// "too many words" can be told apart.
pub(crate) const MAX_WORDS: usize = 8;

/// The space-separated words of a command line, held on the stack: memcached splits on `' '`
/// only, and runs of spaces (leading ones too) separate nothing.
pub(crate) struct Words<'a> {
    words: [&'a [u8]; MAX_WORDS],
    len: usize,
    /// True when the line had more than [`MAX_WORDS`] words.
    pub overflow: bool,
}

impl<'a> Words<'a> {
    /// Splits `line`, keeping at most [`MAX_WORDS`] words.
    pub fn split(line: &'a [u8]) -> Self {
        let mut words = Words {
            words: [&[]; MAX_WORDS],
            len: 0,
            overflow: false,
        };
        for word in split_spaces(line) {
            if words.len == MAX_WORDS {
                words.overflow = true;
                break;
            }
            words.words[words.len] = word;
            words.len += 1;
        }
        words
    }

    /// The words kept.
    pub fn as_slice(&self) -> &[&'a [u8]] {
        &self.words[..self.len]
    }

    /// How many words the line had (more than [`MAX_WORDS`] reads as `MAX_WORDS + 1`).
    pub fn count(&self) -> usize {
        self.len + usize::from(self.overflow)
    }

    /// memcached's `set_noreply_maybe`: the last word is exactly `noreply`.
    pub fn noreply(&self) -> bool {
        !self.overflow && self.len > 1 && self.words[self.len - 1] == b"noreply"
    }
}

/// Iterates over the non-empty space-separated words of `line`.
pub(crate) fn split_spaces(line: &[u8]) -> impl Iterator<Item = &[u8]> {
    line.split(|&b| b == b' ').filter(|w| !w.is_empty())
}

/// Whether `key` is an acceptable key: 1..=max bytes and no NUL, `\r` or `\n`. memcached 1.6
/// splits keys on spaces only and takes any other byte, and libmemcached's own load generator
/// (`memcaslap`) sends keys full of control bytes (`\x10`…), so memcord takes them too; only
/// the bytes that would break a reply line or a C string are refused.
pub(crate) fn key_ok(key: &[u8], max_len: usize) -> bool {
    !key.is_empty() && key.len() <= max_len && !key.iter().any(|&b| matches!(b, 0 | b'\r' | b'\n'))
}

/// Splits an optional sign from the digits; `None` unless at least one digit and digits only.
fn sign_and_digits(word: &[u8]) -> Option<(bool, &[u8])> {
    let (negative, digits) = match word {
        [b'-', rest @ ..] => (true, rest),
        [b'+', rest @ ..] => (false, rest),
        _ => (false, word),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some((negative, digits))
}

/// Accumulates decimal digits, `None` on overflow (strtoul's `ERANGE`).
fn digits_value(digits: &[u8]) -> Option<u64> {
    digits.iter().try_fold(0u64, |acc, &d| {
        acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// memcached's `safe_strtoull`: decimal, optional `+`; a `-` is refused unless the value is 0
/// (strtoull's wrap-around of other negatives is a C artefact memcord does not copy).
pub(crate) fn parse_u64(word: &[u8]) -> Option<u64> {
    let (negative, digits) = sign_and_digits(word)?;
    let value = digits_value(digits)?;
    if negative && value != 0 {
        return None;
    }
    Some(value)
}

/// memcached's `safe_strtoul` into a 32-bit field (flags, verbosity). memcached silently
/// truncates values above `u32::MAX`; memcord refuses them.
pub(crate) fn parse_u32(word: &[u8]) -> Option<u32> {
    parse_u64(word).and_then(|v| u32::try_from(v).ok())
}

/// memcached's `safe_strtol` (exptime, byte counts, delays), kept at 64 bits: memcached
/// truncates to 32 bits after parsing, an artefact memcord does not copy.
pub(crate) fn parse_i64(word: &[u8]) -> Option<i64> {
    let (negative, digits) = sign_and_digits(word)?;
    let magnitude = digits_value(digits)?;
    if negative {
        // -(2^63) is the one value whose magnitude does not fit an i64.
        0i64.checked_sub_unsigned(magnitude)
    } else {
        i64::try_from(magnitude).ok()
    }
}

/// Appends the decimal form of `n` without going through `fmt`.
pub(crate) fn put_u64(out: &mut bytes::BytesMut, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[at..]);
}

/// Appends the decimal form of `n`.
pub(crate) fn put_i64(out: &mut bytes::BytesMut, n: i64) {
    if n < 0 {
        out.extend_from_slice(b"-");
    }
    put_u64(out, n.unsigned_abs());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_lines_with_either_terminator() {
        let l = find_line(b"get a\r\nrest", 100).unwrap();
        assert_eq!((l.text, l.consumed), (&b"get a"[..], 7));
        let l = find_line(b"get a\nrest", 100).unwrap();
        assert_eq!((l.text, l.consumed), (&b"get a"[..], 6));
        let l = find_line(b"\r\n", 100).unwrap();
        assert_eq!((l.text, l.consumed), (&b""[..], 2));
        assert_eq!(find_line(b"get a\r", 100), None);
        assert_eq!(find_line(b"get a\r\n", 3), None);
    }

    #[test]
    fn words_split_on_spaces_only() {
        let w = Words::split(b"  get  a\tb   c ");
        assert_eq!(w.as_slice(), &[&b"get"[..], b"a\tb", b"c"]);
        assert_eq!(w.count(), 3);
        let w = Words::split(b"a b c d e f g h i j");
        assert!(w.overflow);
        assert_eq!(w.count(), MAX_WORDS + 1);
        assert!(!w.noreply());
        assert!(Words::split(b"delete k noreply").noreply());
        assert!(!Words::split(b"noreply").noreply());
    }

    #[test]
    fn numbers_follow_memcached() {
        let u64_cases: &[(&[u8], Option<u64>)] = &[
            (b"0", Some(0)),
            (b"+5", Some(5)),
            (b"-0", Some(0)),
            (b"-1", None),
            (b"18446744073709551615", Some(u64::MAX)),
            (b"18446744073709551616", None),
            (b"", None),
            (b"+", None),
            (b"1x", None),
            (b"abc", None),
        ];
        for (word, want) in u64_cases {
            assert_eq!(
                parse_u64(word),
                *want,
                "{:?}",
                String::from_utf8_lossy(word)
            );
        }
        assert_eq!(parse_u32(b"4294967295"), Some(u32::MAX));
        assert_eq!(parse_u32(b"4294967296"), None);
        assert_eq!(parse_i64(b"-1"), Some(-1));
        assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(parse_i64(b"9223372036854775808"), None);
        assert_eq!(parse_i64(b"--1"), None);
    }

    #[test]
    fn decimal_output() {
        for n in [0u64, 7, 10, 12345, u64::MAX] {
            let mut out = bytes::BytesMut::new();
            put_u64(&mut out, n);
            assert_eq!(&out[..], n.to_string().as_bytes());
        }
        let mut out = bytes::BytesMut::new();
        put_i64(&mut out, i64::MIN);
        assert_eq!(&out[..], i64::MIN.to_string().as_bytes());
    }
}
