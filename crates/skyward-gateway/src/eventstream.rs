//! The AWS event stream framing (`application/vnd.amazon.eventstream`)
//! that Bedrock's ConverseStream answers in: each message is a prelude
//! (total length, headers length, CRC-32 of those 8 bytes), typed headers
//! (`:event-type`, `:message-type`, `:exception-type`, …), a payload, and a
//! CRC-32 of everything before it. Decoded incrementally from chunks split
//! anywhere; every length is checked before anything is allocated.

/// AWS caps a message at 16 MiB of payload plus 128 KiB of headers.
pub const MESSAGE_BYTES_MAX: usize = 16 * 1024 * 1024 + 128 * 1024 + 16;

/// CRC-32 (IEEE 802.3, reflected, as zlib's).
pub fn crc32(data: &[u8]) -> u32 {
    static TABLE: std::sync::OnceLock<[u32; 256]> = std::sync::OnceLock::new();
    let t = TABLE.get_or_init(|| {
        let mut t = [0u32; 256];
        for (i, e) in t.iter_mut().enumerate() {
            let mut c = i as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
            *e = c;
        }
        t
    });
    let mut c = !0u32;
    for &b in data {
        c = t[((c ^ u32::from(b)) & 0xFF) as usize] ^ (c >> 8);
    }
    !c
}

/// One decoded message: its string headers (others skipped) and payload.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub headers: Vec<(String, String)>,
    pub payload: Vec<u8>,
}

impl Message {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Encodes a message whose headers are all strings.
pub fn encode(headers: &[(&str, &str)], payload: &[u8]) -> Vec<u8> {
    let mut h = Vec::new();
    for (n, v) in headers {
        h.push(n.len().min(255) as u8);
        h.extend_from_slice(&n.as_bytes()[..n.len().min(255)]);
        h.push(7);
        let v = &v.as_bytes()[..v.len().min(u16::MAX as usize)];
        h.extend_from_slice(&(v.len() as u16).to_be_bytes());
        h.extend_from_slice(v);
    }
    let total = 12 + h.len() + payload.len() + 4;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&(total as u32).to_be_bytes());
    out.extend_from_slice(&(h.len() as u32).to_be_bytes());
    let pc = crc32(&out);
    out.extend_from_slice(&pc.to_be_bytes());
    out.extend_from_slice(&h);
    out.extend_from_slice(payload);
    let mc = crc32(&out);
    out.extend_from_slice(&mc.to_be_bytes());
    out
}

/// Incremental decoder: feed bytes as they come, take whole messages.
#[derive(Default)]
pub struct Decoder {
    buf: Vec<u8>,
}

impl Decoder {
    /// The messages completed by `b`; an error when the stream is not an
    /// event stream (bad CRC, impossible lengths, bad header).
    pub fn feed(&mut self, b: &[u8]) -> Result<Vec<Message>, String> {
        self.buf.extend_from_slice(b);
        let mut out = Vec::new();
        let mut at = 0;
        loop {
            let rest = &self.buf[at..];
            if rest.len() < 12 {
                break;
            }
            let total = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            let hlen = u32::from_be_bytes([rest[4], rest[5], rest[6], rest[7]]) as usize;
            let pc = u32::from_be_bytes([rest[8], rest[9], rest[10], rest[11]]);
            if crc32(&rest[..8]) != pc {
                return Err("event stream prelude checksum does not match".into());
            }
            if !(16..=MESSAGE_BYTES_MAX).contains(&total) || hlen > total - 16 {
                return Err(format!(
                    "event stream message of {total} bytes ({hlen} of headers) is not possible"
                ));
            }
            if rest.len() < total {
                break;
            }
            let msg = &rest[..total];
            let mc = u32::from_be_bytes([
                msg[total - 4],
                msg[total - 3],
                msg[total - 2],
                msg[total - 1],
            ]);
            if crc32(&msg[..total - 4]) != mc {
                return Err("event stream message checksum does not match".into());
            }
            let headers = parse_headers(&msg[12..12 + hlen])?;
            out.push(Message {
                headers,
                payload: msg[12 + hlen..total - 4].to_vec(),
            });
            at += total;
        }
        self.buf.drain(..at);
        Ok(out)
    }

    /// Bytes of a message not yet complete.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}

fn parse_headers(mut h: &[u8]) -> Result<Vec<(String, String)>, String> {
    let bad = || "event stream header is cut short".to_string();
    let mut out = Vec::new();
    while !h.is_empty() {
        let nlen = h[0] as usize;
        let name = h.get(1..1 + nlen).ok_or_else(bad)?;
        let name = String::from_utf8_lossy(name).into_owned();
        h = &h[1 + nlen..];
        let ty = *h.first().ok_or_else(bad)?;
        h = &h[1..];
        // Sizes of the fixed-width types; 6 (bytes) and 7 (string) carry a
        // 2-byte length.
        let fixed = match ty {
            0 | 1 => Some(0),
            2 => Some(1),
            3 => Some(2),
            4 => Some(4),
            5 | 8 => Some(8),
            9 => Some(16),
            6 | 7 => None,
            other => return Err(format!("event stream header type {other} is unknown")),
        };
        match fixed {
            Some(n) => {
                h = h.get(n..).ok_or_else(bad)?;
            }
            None => {
                let len = h.get(..2).ok_or_else(bad)?;
                let len = u16::from_be_bytes([len[0], len[1]]) as usize;
                let v = h.get(2..2 + len).ok_or_else(bad)?;
                if ty == 7 {
                    out.push((name, String::from_utf8_lossy(v).into_owned()));
                }
                h = &h[2 + len..];
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_check_value() {
        // The catalogue's check value for CRC-32/ISO-HDLC.
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn the_documented_empty_message() {
        // AWS's event stream test vector "empty_message": 16 bytes.
        let want = [
            0x00, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x00, 0x05, 0xc2, 0x48, 0xeb, 0x7d, 0x98,
            0xc8, 0xff,
        ];
        assert_eq!(encode(&[], b""), want);
        let mut d = Decoder::default();
        let m = d.feed(&want).unwrap();
        assert_eq!(m.len(), 1);
        assert!(m[0].payload.is_empty());
    }

    #[test]
    fn decodes_across_any_split_and_refuses_damage() {
        let a = encode(
            &[
                (":event-type", "contentBlockDelta"),
                (":message-type", "event"),
            ],
            br#"{"delta":{"text":"Hi"},"contentBlockIndex":0}"#,
        );
        let b = encode(
            &[(":event-type", "messageStop")],
            br#"{"stopReason":"end_turn"}"#,
        );
        let all = [a.clone(), b.clone()].concat();
        for cut in 0..=all.len() {
            let mut d = Decoder::default();
            let mut got = d.feed(&all[..cut]).unwrap();
            got.extend(d.feed(&all[cut..]).unwrap());
            assert_eq!(got.len(), 2, "cut at {cut}");
            assert_eq!(got[0].header(":event-type"), Some("contentBlockDelta"));
            assert_eq!(got[1].payload, br#"{"stopReason":"end_turn"}"#);
            assert_eq!(d.pending(), 0);
        }
        let mut broken = a.clone();
        let n = broken.len();
        broken[n - 6] ^= 1;
        assert!(Decoder::default().feed(&broken).is_err());
        // A prelude claiming 4 GiB is refused before anything is held.
        let mut huge = vec![0xff, 0xff, 0xff, 0xf0, 0, 0, 0, 0];
        let c = crc32(&huge);
        huge.extend_from_slice(&c.to_be_bytes());
        assert!(Decoder::default()
            .feed(&huge)
            .unwrap_err()
            .contains("not possible"));
    }
}
