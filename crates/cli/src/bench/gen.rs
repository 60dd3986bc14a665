//! Deterministic synthetic input for `runnel bench`.
//!
//! The events imitate the shapes used by published stream-processing benchmarks so numbers are
//! comparable: Nexmark-style bids (about 200 bytes of JSON, a hot set of auctions and bidders) and
//! sensor readings (about 90 bytes, Zipf-skewed over a configurable number of sensors, 1 % of them
//! arriving up to 5 s late). A small seeded PRNG (SplitMix64) is used instead of a `rand`
//! dependency so the same seed produces byte-identical topics on every platform and every run,
//! which is what makes two runs of the benchmark comparable.

use std::fmt::Write as _;

/// Event time of the first generated event (2023-11-14T22:13:20Z); fixed for reproducibility.
pub const BASE_TIMESTAMP_MS: i64 = 1_700_000_000_000;
/// Generated events per millisecond of event time (10 K events/s of event time).
const EVENTS_PER_MS: u64 = 10;

/// SplitMix64: tiny, fast, and good enough statistically for synthetic data.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform value in `0..n` (`n` > 0; returns 0 for `n` = 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        // Multiply-shift: unbiased enough for data generation and branch-free.
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// A uniform value in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn letters(&mut self, out: &mut String, len: u64) {
        for _ in 0..len {
            out.push(char::from(b'a' + self.below(26) as u8));
        }
    }
}

/// Samples ranks `0..n` with probability proportional to `1 / (rank + 1)^s`.
#[derive(Debug, Clone)]
pub struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    pub fn new(n: u64, s: f64) -> Self {
        let mut cdf = Vec::with_capacity(n as usize);
        let mut total = 0.0;
        for k in 1..=n.max(1) {
            total += 1.0 / (k as f64).powf(s);
            cdf.push(total);
        }
        for c in &mut cdf {
            *c /= total;
        }
        Zipf { cdf }
    }

    pub fn sample(&self, rng: &mut SplitMix64) -> u64 {
        let u = rng.unit();
        let rank = self.cdf.partition_point(|&c| c <= u);
        rank.min(self.cdf.len() - 1) as u64
    }
}

const CHANNELS: [&str; 4] = ["Google", "Facebook", "Baidu", "Apple"];

/// Which input a generator produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// Nexmark-style bids: `auction, bidder, price, channel, url, date_time, extra`.
    Bids,
    /// Sensor readings: `sensor_id, ts, temp, humidity, site`.
    Sensors,
}

/// An endless, deterministic stream of JSON events of one kind.
#[derive(Debug, Clone)]
pub struct Generator {
    kind: EventKind,
    rng: SplitMix64,
    index: u64,
    zipf: Option<Zipf>,
}

impl Generator {
    pub fn bids(seed: u64) -> Self {
        Generator {
            kind: EventKind::Bids,
            rng: SplitMix64::new(seed),
            index: 0,
            zipf: None,
        }
    }

    /// Readings from `sensors` distinct sensors, Zipf-skewed (s = 1.0).
    pub fn sensors(seed: u64, sensors: u64) -> Self {
        Generator {
            kind: EventKind::Sensors,
            rng: SplitMix64::new(seed ^ 0x5E45_0125),
            index: 0,
            zipf: Some(Zipf::new(sensors.max(1), 1.0)),
        }
    }

    pub fn kind(&self) -> EventKind {
        self.kind
    }

    /// Writes the next event into `out` and its record key into `key` (both cleared first) and
    /// returns its event time in ms, which is also used as the Kafka record timestamp.
    ///
    /// Bids have no key (a bid stream is not partitioned by anything a query groups on); readings
    /// are keyed by their sensor id, as a device gateway writes them, so that every reading of a
    /// sensor lands in one partition and a `GROUP BY` of the key aggregates without repartitioning.
    pub fn next_event(&mut self, out: &mut String, key: &mut String) -> i64 {
        out.clear();
        key.clear();
        let base = BASE_TIMESTAMP_MS + (self.index / EVENTS_PER_MS) as i64;
        self.index += 1;
        match self.kind {
            EventKind::Bids => self.bid(out, base),
            EventKind::Sensors => self.reading(out, key, base),
        }
    }

    fn bid(&mut self, out: &mut String, ts: i64) -> i64 {
        let r = &mut self.rng;
        // Half of the bids go to 100 hot auctions, a quarter of them come from 100 hot bidders.
        let auction = 1000
            + if r.below(2) == 0 {
                r.below(100)
            } else {
                r.below(10_000)
            };
        let bidder = 2000
            + if r.below(4) == 0 {
                r.below(100)
            } else {
                r.below(100_000)
            };
        let u = r.unit();
        let price = 100 + (u * u * u * 1_000_000.0) as u64;
        let channel_no = r.below(10);
        let _ = write!(
            out,
            "{{\"auction\":{auction},\"bidder\":{bidder},\"price\":{price},"
        );
        if channel_no < 9 {
            let _ = write!(
                out,
                "\"channel\":\"{}\",",
                CHANNELS[r.below(CHANNELS.len() as u64) as usize]
            );
        } else {
            let _ = write!(out, "\"channel\":\"channel-{}\",", r.below(10_000));
        }
        out.push_str("\"url\":\"https://www.nexmark.com/");
        for _ in 0..3 {
            r.letters(out, 5);
            out.push('/');
        }
        let _ = write!(
            out,
            "item.htm?query=1&channel_id={}\",\"date_time\":{ts},\"extra\":\"",
            r.below(1 << 20)
        );
        let extra = 10 + r.below(31);
        r.letters(out, extra);
        out.push_str("\"}");
        ts
    }

    fn reading(&mut self, out: &mut String, key: &mut String, base: i64) -> i64 {
        let sensor = self.zipf.as_ref().map_or(0, |z| z.sample(&mut self.rng));
        let r = &mut self.rng;
        // 1 % of the readings arrive late, by up to 5 s of event time.
        let ts = if r.below(100) == 0 {
            base - r.below(5_000) as i64
        } else {
            base
        };
        let temp = 15.0 + 20.0 * r.unit();
        let humidity = 20.0 + 60.0 * r.unit();
        let _ = write!(
            out,
            "{{\"sensor_id\":\"s-{sensor:06}\",\"ts\":{ts},\"temp\":{temp:.2},\"humidity\":{humidity:.1},\"site\":\"plant-{}\"}}",
            sensor % 50
        );
        let _ = write!(key, "s-{sensor:06}");
        ts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn take(g: Generator, n: usize) -> Vec<(i64, String)> {
        take_keyed(g, n)
            .into_iter()
            .map(|(ts, _, value)| (ts, value))
            .collect()
    }

    fn take_keyed(mut g: Generator, n: usize) -> Vec<(i64, String, String)> {
        let (mut buf, mut key) = (String::new(), String::new());
        (0..n)
            .map(|_| {
                let ts = g.next_event(&mut buf, &mut key);
                (ts, key.clone(), buf.clone())
            })
            .collect()
    }

    #[test]
    fn readings_are_keyed_by_their_sensor_and_bids_have_no_key() {
        for (_, key, value) in take_keyed(Generator::sensors(3, 1000), 200) {
            let v: serde_json::Value = serde_json::from_str(&value).unwrap();
            assert_eq!(v["sensor_id"].as_str(), Some(key.as_str()));
        }
        assert!(take_keyed(Generator::bids(3), 50)
            .iter()
            .all(|(_, key, _)| key.is_empty()));
    }

    #[test]
    fn same_seed_same_events_and_different_seed_different_events() {
        assert_eq!(take(Generator::bids(7), 500), take(Generator::bids(7), 500));
        assert_ne!(take(Generator::bids(7), 50), take(Generator::bids(8), 50));
        assert_eq!(
            take(Generator::sensors(7, 1000), 500),
            take(Generator::sensors(7, 1000), 500)
        );
        // Pinned first event: a change here changes every published benchmark number's input.
        let first = take(Generator::sensors(42, 100_000), 1).remove(0);
        assert_eq!(first.0, BASE_TIMESTAMP_MS);
        assert!(first.1.starts_with("{\"sensor_id\":\"s-"), "{}", first.1);
    }

    #[test]
    fn bids_are_valid_json_of_about_200_bytes_and_90_percent_pass_w1() {
        let events = take(Generator::bids(42), 10_000);
        let mut bytes = 0;
        let mut pass = 0;
        for (ts, text) in &events {
            bytes += text.len();
            let v: serde_json::Value = serde_json::from_str(text).unwrap();
            let auction = v["auction"].as_u64().unwrap();
            assert!(v["bidder"].as_u64().is_some());
            assert!(v["price"].as_u64().unwrap() >= 100);
            assert!(v["channel"].as_str().is_some());
            assert!(v["url"].as_str().unwrap().starts_with("https://"));
            assert_eq!(v["date_time"].as_i64().unwrap(), *ts);
            if auction % 100 < 90 {
                pass += 1;
            }
        }
        let avg = bytes / events.len();
        assert!((180..=230).contains(&avg), "average bid size {avg}");
        assert!(
            (8_700..=9_300).contains(&pass),
            "{pass} of 10000 pass the W1 filter"
        );
    }

    #[test]
    fn readings_are_valid_json_of_about_100_bytes_skewed_and_some_late() {
        let events = take(Generator::sensors(42, 100_000), 20_000);
        let mut bytes = 0;
        let mut late = 0;
        let mut hottest = 0;
        for (i, (ts, text)) in events.iter().enumerate() {
            bytes += text.len();
            let v: serde_json::Value = serde_json::from_str(text).unwrap();
            assert_eq!(v["ts"].as_i64().unwrap(), *ts);
            let temp = v["temp"].as_f64().unwrap();
            assert!((15.0..=35.0).contains(&temp));
            if v["sensor_id"] == "s-000000" {
                hottest += 1;
            }
            if *ts < BASE_TIMESTAMP_MS + (i as i64) / 10 {
                late += 1;
            }
        }
        let avg = bytes / events.len();
        assert!((80..=110).contains(&avg), "average reading size {avg}");
        // Zipf(1.0) over 100 K ranks gives the top rank 1/H(100000) ≈ 8.3 % of the events.
        assert!(
            (1_300..=2_000).contains(&hottest),
            "hottest sensor: {hottest}"
        );
        assert!((100..=320).contains(&late), "late readings: {late}");
    }

    #[test]
    fn zipf_stays_in_range_and_rng_below_is_bounded() {
        let z = Zipf::new(10, 1.0);
        let mut r = SplitMix64::new(1);
        for _ in 0..10_000 {
            assert!(z.sample(&mut r) < 10);
            assert!(r.below(3) < 3);
            let u = r.unit();
            assert!((0.0..1.0).contains(&u));
        }
        assert_eq!(r.below(0), 0);
    }
}
