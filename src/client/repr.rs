//! Python's `repr()` of a bytes object, byte for byte: what the classic
//! Python socket client prints, so `echoloop client` output can be compared
//! with it directly.
//!
//! The rules (CPython's `bytes_repr`): wrap in single quotes, unless the
//! bytes hold a `'` and no `"`, then in double quotes. Inside, `\\` for a
//! backslash, `\'` for the chosen quote when it is `'`, `\t` `\n` `\r`, and
//! `\xNN` (lower-case hex) for every other byte outside printable ASCII
//! (0x20..=0x7e). Everything else stands as itself.

/// Python's `repr(b)` for `bytes`, e.g. `b'hi\n'`.
pub fn bytes_repr(bytes: &[u8]) -> String {
    let quote = if bytes.contains(&b'\'') && !bytes.contains(&b'"') {
        b'"'
    } else {
        b'\''
    };
    let mut out = String::with_capacity(bytes.len() + 3);
    out.push('b');
    out.push(quote as char);
    for &b in bytes {
        match b {
            b'\\' => out.push_str("\\\\"),
            b'\t' => out.push_str("\\t"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            _ if b == quote => {
                out.push('\\');
                out.push(b as char);
            }
            0x20..=0x7e => out.push(b as char),
            _ => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.push_str("\\x");
                out.push(HEX[usize::from(b >> 4)] as char);
                out.push(HEX[usize::from(b & 0xf)] as char);
            }
        }
    }
    out.push(quote as char);
    out
}

#[cfg(test)]
mod tests {
    use super::bytes_repr;

    /// Python's output for each quote case, copied from `python3 -c
    /// 'print(repr(...))'`.
    #[test]
    fn quote_choice_matches_python() {
        let table: [(&[u8], &str); 6] = [
            (b"", "b''"),
            (b"plain", "b'plain'"),
            (b"it's", "b\"it's\""),
            (b"say \"hi\"", "b'say \"hi\"'"),
            (b"both ' and \"", "b'both \\' and \"'"),
            (b"'", "b\"'\""),
        ];
        for (bytes, want) in table {
            assert_eq!(bytes_repr(bytes), want, "{bytes:?}");
        }
    }

    /// All 256 byte values at once, exactly as `python3 -c
    /// 'print(repr(bytes(range(256))))'` prints them.
    #[test]
    fn every_byte_value_matches_python() {
        let all: Vec<u8> = (0..=255u8).collect();
        assert_eq!(bytes_repr(&all), PYTHON_ALL_BYTES);
    }

    const PYTHON_ALL_BYTES: &str = r##"b'\x00\x01\x02\x03\x04\x05\x06\x07\x08\t\n\x0b\x0c\r\x0e\x0f\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f !"#$%&\'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~\x7f\x80\x81\x82\x83\x84\x85\x86\x87\x88\x89\x8a\x8b\x8c\x8d\x8e\x8f\x90\x91\x92\x93\x94\x95\x96\x97\x98\x99\x9a\x9b\x9c\x9d\x9e\x9f\xa0\xa1\xa2\xa3\xa4\xa5\xa6\xa7\xa8\xa9\xaa\xab\xac\xad\xae\xaf\xb0\xb1\xb2\xb3\xb4\xb5\xb6\xb7\xb8\xb9\xba\xbb\xbc\xbd\xbe\xbf\xc0\xc1\xc2\xc3\xc4\xc5\xc6\xc7\xc8\xc9\xca\xcb\xcc\xcd\xce\xcf\xd0\xd1\xd2\xd3\xd4\xd5\xd6\xd7\xd8\xd9\xda\xdb\xdc\xdd\xde\xdf\xe0\xe1\xe2\xe3\xe4\xe5\xe6\xe7\xe8\xe9\xea\xeb\xec\xed\xee\xef\xf0\xf1\xf2\xf3\xf4\xf5\xf6\xf7\xf8\xf9\xfa\xfb\xfc\xfd\xfe\xff'"##;

    /// Escapes, as Python prints them.
    #[test]
    fn escapes_match_python() {
        assert_eq!(
            bytes_repr(b"a\tb\nc\rd\\e\x00\x1f\x7f\x80\xff~ "),
            "b'a\\tb\\nc\\rd\\\\e\\x00\\x1f\\x7f\\x80\\xff~ '"
        );
        assert_eq!(
            bytes_repr(b"HTTP/1.0 200 OK\r\n\r\n"),
            "b'HTTP/1.0 200 OK\\r\\n\\r\\n'"
        );
    }
}
