//! Windowed keys, laid out as Kafka Streams' `TimeWindowedSerde` and `SessionWindowedSerde` do,
//! so that windowed topics are readable by and from ksqlDB and Kafka Streams applications.
//!
//! * Time windows (TUMBLING, HOPPING): the inner key bytes, then the window start as an 8-byte
//!   big-endian long. The end is not stored; readers add the window size.
//! * Session windows: the inner key bytes, then the end, then the start (8 bytes each). The end
//!   is inclusive: a one-event session has `start == end`.

pub use runnel_plan::catalog::WindowType;

use super::SerdeError;

/// A window's bounds in milliseconds since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Window {
    pub start: i64,
    pub end: i64,
}

const LONG: usize = 8;

/// The key bytes of `inner` in `window`.
pub fn encode_windowed_key(inner: &[u8], window_type: WindowType, window: Window) -> Vec<u8> {
    let mut out = Vec::with_capacity(inner.len() + 2 * LONG);
    out.extend_from_slice(inner);
    if window_type == WindowType::Session {
        out.extend_from_slice(&window.end.to_be_bytes());
    }
    out.extend_from_slice(&window.start.to_be_bytes());
    out
}

/// Splits windowed key bytes into the inner key and the window. For time windows the end is
/// `start + window_size_ms` (`i64::MAX` if the size is unknown or the sum overflows, as Kafka
/// Streams does).
pub fn decode_windowed_key(
    bytes: &[u8],
    window_type: WindowType,
    window_size_ms: Option<i64>,
) -> Result<(Vec<u8>, Window), SerdeError> {
    let suffix = match window_type {
        WindowType::Session => 2 * LONG,
        WindowType::Tumbling | WindowType::Hopping => LONG,
    };
    let Some(inner_len) = bytes.len().checked_sub(suffix) else {
        return Err(SerdeError::new(format!(
            "Windowed key is too short: {} bytes, a {} window key needs at least {suffix}",
            bytes.len(),
            window_type.name()
        )));
    };
    let (inner, tail) = bytes.split_at(inner_len);
    let long_at = |i: usize| {
        let mut raw = [0u8; LONG];
        raw.copy_from_slice(&tail[i * LONG..(i + 1) * LONG]);
        i64::from_be_bytes(raw)
    };
    let window = match window_type {
        WindowType::Session => Window {
            start: long_at(1),
            end: long_at(0),
        },
        WindowType::Tumbling | WindowType::Hopping => {
            let start = long_at(0);
            let end = window_size_ms
                .and_then(|size| start.checked_add(size))
                .filter(|end| *end >= 0)
                .unwrap_or(i64::MAX);
            Window { start, end }
        }
    };
    Ok((inner.to_vec(), window))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_windows_store_only_the_start() {
        let bytes = encode_windowed_key(
            b"k",
            WindowType::Tumbling,
            Window {
                start: 30000,
                end: 60000,
            },
        );
        let mut expected = b"k".to_vec();
        expected.extend_from_slice(&30000i64.to_be_bytes());
        assert_eq!(bytes, expected);
        let (inner, window) =
            decode_windowed_key(&bytes, WindowType::Hopping, Some(30000)).unwrap();
        assert_eq!(inner, b"k");
        assert_eq!(
            window,
            Window {
                start: 30000,
                end: 60000
            }
        );
        let (_, unsized_window) = decode_windowed_key(&bytes, WindowType::Tumbling, None).unwrap();
        assert_eq!(unsized_window.end, i64::MAX);
    }

    #[test]
    fn session_windows_store_end_then_start() {
        let window = Window {
            start: 12,
            end: 465,
        };
        let bytes = encode_windowed_key(&[1, 2], WindowType::Session, window);
        let mut expected = vec![1, 2];
        expected.extend_from_slice(&465i64.to_be_bytes());
        expected.extend_from_slice(&12i64.to_be_bytes());
        assert_eq!(bytes, expected);
        assert_eq!(
            decode_windowed_key(&bytes, WindowType::Session, None).unwrap(),
            (vec![1, 2], window)
        );
    }

    #[test]
    fn empty_inner_key_and_short_input() {
        let bytes = encode_windowed_key(&[], WindowType::Session, Window { start: 0, end: 0 });
        assert_eq!(bytes.len(), 16);
        assert_eq!(
            decode_windowed_key(&bytes, WindowType::Session, None)
                .unwrap()
                .0,
            Vec::<u8>::new()
        );
        assert!(decode_windowed_key(&[0; 7], WindowType::Tumbling, Some(1)).is_err());
        assert!(decode_windowed_key(&[0; 15], WindowType::Session, None).is_err());
    }
}
