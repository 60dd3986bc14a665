//! Java `DateTimeFormatter` patterns and ISO-8601 text, on top of chrono.
//!
//! ksqlDB's date/time functions take user patterns written for Java (`yyyy-MM-dd'T'HH:mm:ssX`,
//! `hh:mm a`, `dd-MMM-yyyy`), so the pattern language is interpreted here letter by letter rather
//! than translated to strftime, which cannot express several of its rules (quoting, optional
//! sections, fraction widths, adjacent numeric fields). Text is parsed case-insensitively, as
//! ksqlDB's formatters are built. Zones are Java zone ids: region names (`America/New_York`),
//! offsets (`+02:00`, `+0200`), `UTC`/`GMT`/`Z` and common abbreviations when parsing (`PST`).

use chrono::{
    DateTime, Datelike, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeZone,
    Timelike, Utc,
};
use chrono_tz::{OffsetName, Tz};

pub const MILLIS_PER_DAY: i64 = 86_400_000;

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

fn epoch() -> NaiveDate {
    NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default()
}

pub fn date_from_days(days: i32) -> Option<NaiveDate> {
    epoch().checked_add_signed(chrono::Duration::days(days as i64))
}

pub fn days_from_date(date: NaiveDate) -> i32 {
    date.signed_duration_since(epoch()).num_days() as i32
}

pub fn time_from_millis(ms: i32) -> Option<NaiveTime> {
    let ms = ms.rem_euclid(MILLIS_PER_DAY as i32) as u32;
    NaiveTime::from_num_seconds_from_midnight_opt(ms / 1000, (ms % 1000) * 1_000_000)
}

pub fn millis_from_time(t: NaiveTime) -> i32 {
    (t.num_seconds_from_midnight() * 1000 + t.nanosecond() / 1_000_000) as i32
}

pub fn datetime_from_millis(ms: i64) -> Option<NaiveDateTime> {
    DateTime::<Utc>::from_timestamp_millis(ms).map(|d| d.naive_utc())
}

pub fn millis_from_datetime(dt: &NaiveDateTime) -> i64 {
    dt.and_utc().timestamp_millis()
}

fn year_text(y: i32) -> String {
    if (0..=9999).contains(&y) {
        format!("{y:04}")
    } else if y > 9999 {
        format!("+{y}")
    } else {
        format!("-{:04}", -(y as i64))
    }
}

/// `LocalDate.toString()`: `1970-01-11`.
pub fn format_iso_date(days: i32) -> String {
    match date_from_days(days) {
        Some(d) => format!("{}-{:02}-{:02}", year_text(d.year()), d.month(), d.day()),
        None => days.to_string(),
    }
}

/// `DateTimeFormatter.ISO_LOCAL_TIME`: `HH:mm:ss` plus the fraction when it is not zero.
pub fn format_iso_time(ms: i32) -> String {
    let ms = ms.rem_euclid(MILLIS_PER_DAY as i32);
    let (h, m, s, frac) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000);
    let mut out = format!("{h:02}:{m:02}:{s:02}");
    if frac != 0 {
        let f = format!("{frac:03}");
        out.push('.');
        out.push_str(f.trim_end_matches('0'));
    }
    out
}

/// ksqlDB's timestamp text: `yyyy-MM-dd'T'HH:mm:ss.SSS` in UTC.
pub fn format_iso_timestamp(ms: i64) -> String {
    match datetime_from_millis(ms) {
        Some(dt) => format!(
            "{}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}",
            year_text(dt.year()),
            dt.month(),
            dt.day(),
            dt.hour(),
            dt.minute(),
            dt.second(),
            dt.nanosecond() / 1_000_000
        ),
        None => ms.to_string(),
    }
}

fn digits(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// ISO date with missing trailing parts defaulted: `2022`, `2022-04`, `2022-04-28`.
fn parse_date_part(s: &str) -> Option<NaiveDate> {
    let mut parts = s.splitn(3, '-');
    let y: i32 = digits(parts.next()?)? as i32;
    let m = parts.next().map(digits).unwrap_or(Some(1))?;
    let d = parts.next().map(digits).unwrap_or(Some(1))?;
    NaiveDate::from_ymd_opt(y, m, d)
}

/// ISO time with missing trailing parts defaulted: `10`, `10:15`, `10:15:30`, `10:15:30.123`.
fn parse_time_part(s: &str) -> Option<NaiveTime> {
    let (hms, frac) = match s.split_once('.') {
        Some((a, b)) => (a, Some(b)),
        None => (s, None),
    };
    let mut parts = hms.splitn(3, ':');
    let h = digits(parts.next()?)?;
    let m = parts.next().map(digits).unwrap_or(Some(0))?;
    let sec = parts.next().map(digits).unwrap_or(Some(0))?;
    let nanos = match frac {
        Some(f) if !f.is_empty() && f.len() <= 9 && f.bytes().all(|b| b.is_ascii_digit()) => {
            format!("{f:0<9}").parse::<u32>().ok()?
        }
        Some(_) => return None,
        None => 0,
    };
    NaiveTime::from_hms_nano_opt(h, m, sec, nanos)
}

pub fn parse_iso_date(s: &str) -> Option<i32> {
    parse_date_part(s).map(days_from_date)
}

pub fn parse_iso_time(s: &str) -> Option<i32> {
    parse_time_part(s).map(millis_from_time)
}

/// ISO timestamp: date, optional `T` and time, optional zone (`Z`, `+hh`, `+hh:mm`, `+hhmm`);
/// no zone means UTC.
pub fn parse_iso_timestamp(s: &str) -> Option<i64> {
    let (date, rest) = match s.find('T') {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let date = parse_date_part(date)?;
    let (time, offset_secs) = match rest {
        None => (NaiveTime::MIN, 0),
        Some(rest) => {
            let (time_text, zone) = split_zone(rest);
            let offset = match zone {
                Some(z) => parse_offset(z)?,
                None => 0,
            };
            (parse_time_part(time_text)?, offset)
        }
    };
    let dt = NaiveDateTime::new(date, time);
    Some(millis_from_datetime(&dt) - offset_secs as i64 * 1000)
}

fn split_zone(s: &str) -> (&str, Option<&str>) {
    if let Some(stripped) = s.strip_suffix(['Z', 'z']) {
        return (stripped, Some("Z"));
    }
    match s.rfind(['+', '-']) {
        Some(i) => (&s[..i], Some(&s[i..])),
        None => (s, None),
    }
}

/// Offset text in seconds: `Z`, `+h`, `+hh`, `+hh:mm`, `+hhmm`, `+hh:mm:ss`, `+hhmmss`.
pub fn parse_offset(s: &str) -> Option<i32> {
    if s.eq_ignore_ascii_case("Z") {
        return Some(0);
    }
    let (sign, body) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => return None,
    };
    let body: String = body.chars().filter(|c| *c != ':').collect();
    if !body.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (h, m, sec) = match body.len() {
        1 | 2 => (body.parse::<i32>().ok()?, 0, 0),
        4 => (body[..2].parse().ok()?, body[2..].parse().ok()?, 0),
        6 => (
            body[..2].parse().ok()?,
            body[2..4].parse().ok()?,
            body[4..].parse().ok()?,
        ),
        _ => return None,
    };
    if h > 18 || m > 59 || sec > 59 {
        return None;
    }
    Some(sign * (h * 3600 + m * 60 + sec))
}

/// A Java `ZoneId`.
#[derive(Debug, Clone, PartialEq)]
pub enum Zone {
    Fixed(i32),
    Region(Tz),
}

impl Zone {
    /// Java's `ZoneId.of`.
    pub fn of(id: &str) -> Result<Zone, String> {
        let id = id.trim();
        if id == "Z" || id == "UTC" || id == "GMT" || id == "UT" {
            return Ok(Zone::Fixed(0));
        }
        if id.starts_with(['+', '-']) {
            return parse_offset(id)
                .map(Zone::Fixed)
                .ok_or_else(|| format!("Invalid ID for ZoneOffset, invalid format: {id}"));
        }
        for prefix in ["UTC", "GMT", "UT"] {
            if let Some(rest) = id.strip_prefix(prefix) {
                if rest.starts_with(['+', '-']) {
                    if let Some(o) = parse_offset(rest) {
                        return Ok(Zone::Fixed(o));
                    }
                }
            }
        }
        id.parse::<Tz>()
            .map(Zone::Region)
            .map_err(|_| format!("Unknown time-zone ID: {id}"))
    }

    /// Offset in seconds at a UTC instant.
    pub fn offset_at_utc(&self, utc: &NaiveDateTime) -> i32 {
        match self {
            Zone::Fixed(o) => *o,
            Zone::Region(tz) => tz.offset_from_utc_datetime(utc).fix().local_minus_utc(),
        }
    }

    /// Offset in seconds for a local date-time (earlier offset in overlaps, shifted in gaps, as
    /// Java resolves `LocalDateTime.atZone`).
    pub fn offset_for_local(&self, local: &NaiveDateTime) -> i32 {
        match self {
            Zone::Fixed(o) => *o,
            Zone::Region(tz) => match tz.offset_from_local_datetime(local) {
                LocalResult::Single(o) => o.fix().local_minus_utc(),
                LocalResult::Ambiguous(a, _) => a.fix().local_minus_utc(),
                LocalResult::None => {
                    let before = *local - chrono::Duration::hours(3);
                    tz.offset_from_utc_datetime(&before).fix().local_minus_utc()
                }
            },
        }
    }

    /// UTC millis for a local date-time in this zone.
    pub fn local_to_millis(&self, local: &NaiveDateTime) -> i64 {
        millis_from_datetime(local) - self.offset_for_local(local) as i64 * 1000
    }

    /// The local date-time of a UTC instant.
    pub fn millis_to_local(&self, ms: i64) -> Option<NaiveDateTime> {
        let utc = datetime_from_millis(ms)?;
        Some(utc + chrono::Duration::seconds(self.offset_at_utc(&utc) as i64))
    }

    fn short_name(&self, utc: &NaiveDateTime) -> String {
        match self {
            Zone::Fixed(0) => "Z".to_string(),
            Zone::Fixed(o) => offset_text(*o, true, true),
            Zone::Region(tz) => {
                let off = tz.offset_from_utc_datetime(utc);
                match off.abbreviation() {
                    Some(a) if !a.starts_with(['+', '-']) => a.to_string(),
                    _ => format!(
                        "GMT{}",
                        offset_text(off.fix().local_minus_utc(), true, false)
                    ),
                }
            }
        }
    }

    fn id(&self) -> String {
        match self {
            Zone::Fixed(0) => "Z".to_string(),
            Zone::Fixed(o) => offset_text(*o, true, true),
            Zone::Region(tz) => tz.name().to_string(),
        }
    }
}

fn offset_text(secs: i32, colon: bool, always_minutes: bool) -> String {
    let sign = if secs < 0 { '-' } else { '+' };
    let a = secs.abs();
    let (h, m) = (a / 3600, a / 60 % 60);
    if !always_minutes && m == 0 {
        return format!("{sign}{h}");
    }
    if colon {
        format!("{sign}{h:02}:{m:02}")
    } else {
        format!("{sign}{h:02}{m:02}")
    }
}

/// Well-known abbreviations Java accepts when parsing zone names.
fn zone_from_name(name: &str) -> Option<Zone> {
    let upper = name.to_ascii_uppercase();
    let region = match upper.as_str() {
        "UTC" | "GMT" | "Z" | "UT" => return Some(Zone::Fixed(0)),
        "PST" | "PDT" | "PT" => "America/Los_Angeles",
        "MST" | "MDT" | "MT" => "America/Denver",
        "CST" | "CDT" | "CT" => "America/Chicago",
        "EST" | "EDT" | "ET" => "America/New_York",
        "AKST" | "AKDT" => "America/Anchorage",
        "HST" => "Pacific/Honolulu",
        "BST" => "Europe/London",
        "CET" | "CEST" => "Europe/Paris",
        "EET" | "EEST" => "Europe/Athens",
        "WET" | "WEST" => "Europe/Lisbon",
        "IST" => "Asia/Kolkata",
        "JST" => "Asia/Tokyo",
        "AEST" | "AEDT" => "Australia/Sydney",
        _ => return Zone::of(name).ok(),
    };
    region.parse::<Tz>().ok().map(Zone::Region)
}

#[derive(Debug, Clone, PartialEq)]
enum Item {
    Literal(String),
    Field(char, usize),
    OptionalStart,
    OptionalEnd,
}

/// A compiled Java date-time pattern.
#[derive(Debug, Clone, PartialEq)]
pub struct Pattern {
    items: Vec<Item>,
}

impl Pattern {
    pub fn compile(pattern: &str) -> Result<Pattern, String> {
        let chars: Vec<char> = pattern.chars().collect();
        let mut items = Vec::new();
        let mut i = 0;
        let mut depth = 0i32;
        while i < chars.len() {
            let c = chars[i];
            if c == '\'' {
                let mut lit = String::new();
                i += 1;
                if i < chars.len() && chars[i] == '\'' {
                    items.push(Item::Literal("'".into()));
                    i += 1;
                    continue;
                }
                loop {
                    if i >= chars.len() {
                        return Err(format!(
                            "Pattern ends with an incomplete string literal: {pattern}"
                        ));
                    }
                    if chars[i] == '\'' {
                        if i + 1 < chars.len() && chars[i + 1] == '\'' {
                            lit.push('\'');
                            i += 2;
                            continue;
                        }
                        i += 1;
                        break;
                    }
                    lit.push(chars[i]);
                    i += 1;
                }
                items.push(Item::Literal(lit));
            } else if c.is_ascii_alphabetic() {
                let mut n = 1;
                while i + n < chars.len() && chars[i + n] == c {
                    n += 1;
                }
                if !"GuyDMLdQqYwWEecFaBhKkHmsSAnNVvzOXxZ".contains(c) {
                    return Err(format!("Unknown pattern letter: {c}"));
                }
                items.push(Item::Field(c, n));
                i += n;
            } else if c == '[' {
                depth += 1;
                items.push(Item::OptionalStart);
                i += 1;
            } else if c == ']' {
                depth -= 1;
                if depth < 0 {
                    return Err(format!(
                        "Pattern invalid as it contains ] without previous [: {pattern}"
                    ));
                }
                items.push(Item::OptionalEnd);
                i += 1;
            } else {
                items.push(Item::Literal(c.to_string()));
                i += 1;
            }
        }
        Ok(Pattern { items })
    }

    /// Formats a local date-time; `zone` is needed only by zone letters. `has_date`/`has_time`
    /// say which fields exist (a DATE has no hours; Java rejects the pattern then).
    pub fn format(
        &self,
        dt: &NaiveDateTime,
        zone: Option<&Zone>,
        has_date: bool,
        has_time: bool,
    ) -> Result<String, String> {
        let mut out = String::new();
        for item in &self.items {
            match item {
                Item::Literal(s) => out.push_str(s),
                Item::OptionalStart | Item::OptionalEnd => {}
                Item::Field(c, n) => {
                    let (c, n) = (*c, *n);
                    let is_date = "GuyDMLdQqYwWEecF".contains(c);
                    let is_zone = "VvzOXxZ".contains(c);
                    if (is_date && !has_date)
                        || (!is_date && !is_zone && !has_time)
                        || (is_zone && zone.is_none())
                    {
                        return Err(format!("Unsupported field: {}", field_name(c)));
                    }
                    out.push_str(&format_field(c, n, dt, zone)?);
                }
            }
        }
        Ok(out)
    }

    /// Parses `text` completely into its fields.
    pub fn parse(&self, text: &str) -> Result<Parsed, String> {
        let chars: Vec<char> = text.chars().collect();
        let mut parsed = Parsed::default();
        let pos = parse_items(&self.items, 0, &chars, 0, &mut parsed)
            .ok_or_else(|| format!("Text '{text}' could not be parsed"))?;
        if pos != chars.len() {
            return Err(format!(
                "Text '{text}' could not be parsed, unparsed text found at index {pos}"
            ));
        }
        Ok(parsed)
    }
}

fn field_name(c: char) -> &'static str {
    match c {
        'y' | 'u' | 'Y' => "YearOfEra",
        'M' | 'L' => "MonthOfYear",
        'd' => "DayOfMonth",
        'D' => "DayOfYear",
        'E' | 'e' | 'c' => "DayOfWeek",
        'H' | 'k' => "HourOfDay",
        'h' | 'K' => "ClockHourOfAmPm",
        'm' => "MinuteOfHour",
        's' => "SecondOfMinute",
        'S' | 'n' => "NanoOfSecond",
        'a' => "AmPmOfDay",
        _ => "OffsetSeconds",
    }
}

fn pad(v: i64, width: usize) -> String {
    if v < 0 {
        format!("-{:0width$}", -v, width = width)
    } else {
        format!("{v:0width$}")
    }
}

fn format_field(
    c: char,
    n: usize,
    dt: &NaiveDateTime,
    zone: Option<&Zone>,
) -> Result<String, String> {
    let utc = || {
        let off = zone.map(|z| z.offset_for_local(dt)).unwrap_or(0);
        *dt - chrono::Duration::seconds(off as i64)
    };
    Ok(match c {
        'G' => {
            if n == 4 {
                "Anno Domini".into()
            } else if n == 5 {
                "A".into()
            } else {
                "AD".into()
            }
        }
        'y' | 'u' | 'Y' => {
            let y = dt.year() as i64;
            if n == 2 {
                pad(y.rem_euclid(100), 2)
            } else if n >= 4 && y > 9999 {
                format!("+{y}")
            } else {
                pad(y, n)
            }
        }
        'M' | 'L' => {
            let m = dt.month() as usize;
            match n {
                1 | 2 => pad(m as i64, n),
                3 => MONTHS[m - 1][..3].to_string(),
                4 => MONTHS[m - 1].to_string(),
                _ => MONTHS[m - 1][..1].to_string(),
            }
        }
        'd' => pad(dt.day() as i64, n),
        'D' => pad(dt.ordinal() as i64, n),
        'Q' | 'q' => pad(((dt.month() - 1) / 3 + 1) as i64, n),
        'E' | 'e' | 'c' => {
            let wd = dt.weekday().num_days_from_monday() as usize;
            if (c == 'e' || c == 'c') && n <= 2 {
                pad(((wd + 1) % 7 + 1) as i64, n)
            } else if n == 4 {
                DAYS[wd].to_string()
            } else if n == 5 {
                DAYS[wd][..1].to_string()
            } else {
                DAYS[wd][..3].to_string()
            }
        }
        'a' => {
            if dt.hour() < 12 {
                "AM".into()
            } else {
                "PM".into()
            }
        }
        'H' => pad(dt.hour() as i64, n),
        'k' => pad(if dt.hour() == 0 { 24 } else { dt.hour() as i64 }, n),
        'K' => pad((dt.hour() % 12) as i64, n),
        'h' => pad(
            if dt.hour().is_multiple_of(12) {
                12
            } else {
                (dt.hour() % 12) as i64
            },
            n,
        ),
        'm' => pad(dt.minute() as i64, n),
        's' => pad(dt.second() as i64, n),
        'S' => {
            let nanos = format!("{:09}", dt.nanosecond() % 1_000_000_000);
            if n <= 9 {
                nanos[..n].to_string()
            } else {
                format!("{nanos:0<n$}")
            }
        }
        'n' => pad((dt.nanosecond() % 1_000_000_000) as i64, n),
        'A' => pad(millis_from_time(dt.time()) as i64, n),
        'N' => pad(millis_from_time(dt.time()) as i64 * 1_000_000, n),
        'F' => pad(((dt.day() - 1) / 7 + 1) as i64, n),
        'w' | 'W' | 'B' => return Err(format!("Unsupported pattern letter: {c}")),
        _ => {
            let zone = zone.ok_or_else(|| "Unable to extract ZoneId".to_string())?;
            let utc = utc();
            let off = zone.offset_at_utc(&utc);
            match c {
                'V' => zone.id(),
                'z' | 'v' => {
                    if n == 4 {
                        zone.id()
                    } else {
                        zone.short_name(&utc)
                    }
                }
                'O' => {
                    if off == 0 {
                        "GMT".into()
                    } else if n == 4 {
                        format!("GMT{}", offset_text(off, true, true))
                    } else {
                        format!("GMT{}", offset_text(off, true, false))
                    }
                }
                'X' | 'x' => {
                    if c == 'X' && off == 0 {
                        "Z".into()
                    } else {
                        match n {
                            1 => {
                                let t = offset_text(off, false, true);
                                if off % 3600 == 0 {
                                    t[..3].to_string()
                                } else {
                                    t
                                }
                            }
                            2 | 4 => offset_text(off, false, true),
                            _ => offset_text(off, true, true),
                        }
                    }
                }
                _ => match n {
                    1..=3 => offset_text(off, false, true),
                    4 => {
                        if off == 0 {
                            "GMT".into()
                        } else {
                            format!("GMT{}", offset_text(off, true, true))
                        }
                    }
                    _ => {
                        if off == 0 {
                            "Z".into()
                        } else {
                            offset_text(off, true, true)
                        }
                    }
                },
            }
        }
    })
}

/// Fields found by parsing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Parsed {
    pub year: Option<i64>,
    pub two_digit_year: bool,
    pub month: Option<u32>,
    pub day: Option<u32>,
    pub day_of_year: Option<u32>,
    pub hour24: Option<u32>,
    pub hour12: Option<u32>,
    pub pm: Option<bool>,
    pub minute: Option<u32>,
    pub second: Option<u32>,
    pub nano: Option<u32>,
    pub milli_of_day: Option<u32>,
    pub zone: Option<Zone>,
}

impl Parsed {
    /// The date, with missing fields defaulted to 1970-01-01.
    pub fn date(&self) -> Result<NaiveDate, String> {
        let mut year = self.year.unwrap_or(1970);
        if self.two_digit_year {
            year += 2000;
        }
        let year = i32::try_from(year).map_err(|_| format!("Invalid year {year}"))?;
        if let Some(doy) = self.day_of_year {
            return NaiveDate::from_yo_opt(year, doy)
                .ok_or_else(|| format!("Invalid day of year {doy}"));
        }
        let month = self.month.unwrap_or(1);
        let day = self.day.unwrap_or(1);
        NaiveDate::from_ymd_opt(year, month, day)
            .ok_or_else(|| format!("Invalid date '{}-{month:02}-{day:02}'", year_text(year)))
    }

    /// The time of day, with missing fields defaulted to midnight.
    pub fn time(&self) -> Result<NaiveTime, String> {
        if let Some(ms) = self.milli_of_day {
            return time_from_millis(ms as i32).ok_or_else(|| "Invalid milli of day".to_string());
        }
        let hour = match (self.hour24, self.hour12, self.pm) {
            (Some(h), _, _) => h % 24,
            (None, Some(h), pm) => h % 12 + if pm == Some(true) { 12 } else { 0 },
            (None, None, Some(true)) => 12,
            _ => 0,
        };
        NaiveTime::from_hms_nano_opt(
            hour,
            self.minute.unwrap_or(0),
            self.second.unwrap_or(0),
            self.nano.unwrap_or(0),
        )
        .ok_or_else(|| "Invalid time".to_string())
    }

    pub fn datetime(&self) -> Result<NaiveDateTime, String> {
        Ok(NaiveDateTime::new(self.date()?, self.time()?))
    }
}

fn is_numeric_field(item: &Item) -> bool {
    match item {
        Item::Field(c, n) => "yuYdDHhKkmsSnAN".contains(*c) || ("MLQqec".contains(*c) && *n <= 2),
        _ => false,
    }
}

/// Fixed widths of adjacent numeric fields after `idx`, which a variable-width field leaves.
fn reserved_width(items: &[Item], idx: usize) -> usize {
    let mut total = 0;
    for item in &items[idx + 1..] {
        match item {
            Item::Field(c, n) if is_numeric_field(item) => {
                let w = if *c == 'S' || *n >= 2 { *n } else { 1 };
                total += w;
            }
            _ => break,
        }
    }
    total
}

fn parse_items(
    items: &[Item],
    idx: usize,
    text: &[char],
    pos: usize,
    out: &mut Parsed,
) -> Option<usize> {
    if idx == items.len() {
        return Some(pos);
    }
    match &items[idx] {
        Item::OptionalEnd => parse_items(items, idx + 1, text, pos, out),
        Item::OptionalStart => {
            // Try with the optional section, then without it.
            let mut depth = 0;
            let mut end = idx;
            for (j, it) in items.iter().enumerate().skip(idx) {
                match it {
                    Item::OptionalStart => depth += 1,
                    Item::OptionalEnd => {
                        depth -= 1;
                        if depth == 0 {
                            end = j;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            let mut attempt = out.clone();
            if let Some(p) = parse_items(items, idx + 1, text, pos, &mut attempt) {
                *out = attempt;
                return Some(p);
            }
            if end == idx {
                return None;
            }
            parse_items(items, end + 1, text, pos, out)
        }
        Item::Literal(s) => {
            let lit: Vec<char> = s.chars().collect();
            if text.len() < pos + lit.len() {
                return None;
            }
            let matches = text[pos..pos + lit.len()]
                .iter()
                .zip(&lit)
                .all(|(a, b)| a.to_lowercase().eq(b.to_lowercase()));
            if !matches {
                return None;
            }
            parse_items(items, idx + 1, text, pos + lit.len(), out)
        }
        Item::Field(c, n) => {
            let next = parse_field(*c, *n, text, pos, out, reserved_width(items, idx))?;
            parse_items(items, idx + 1, text, next, out)
        }
    }
}

fn take_number(
    text: &[char],
    pos: usize,
    min: usize,
    max: usize,
    signed: bool,
) -> Option<(i64, usize)> {
    let mut p = pos;
    let mut negative = false;
    if signed && p < text.len() && (text[p] == '-' || text[p] == '+') {
        negative = text[p] == '-';
        p += 1;
    }
    let start = p;
    while p < text.len() && p - start < max && text[p].is_ascii_digit() {
        p += 1;
    }
    if p - start < min {
        return None;
    }
    let s: String = text[start..p].iter().collect();
    let v: i64 = s.parse().ok()?;
    Some((if negative { -v } else { v }, p))
}

fn take_word<'a>(
    text: &[char],
    pos: usize,
    words: impl Iterator<Item = (&'a str, u32)>,
) -> Option<(u32, usize)> {
    let mut best: Option<(u32, usize)> = None;
    for (w, v) in words {
        let wc: Vec<char> = w.chars().collect();
        if text.len() >= pos + wc.len()
            && text[pos..pos + wc.len()]
                .iter()
                .zip(&wc)
                .all(|(a, b)| a.eq_ignore_ascii_case(b))
            && best.is_none_or(|(_, l)| wc.len() > l)
        {
            best = Some((v, wc.len()));
        }
    }
    best.map(|(v, l)| (v, pos + l))
}

fn parse_field(
    c: char,
    n: usize,
    text: &[char],
    pos: usize,
    out: &mut Parsed,
    reserved: usize,
) -> Option<usize> {
    let avail = text[pos..]
        .iter()
        .take_while(|ch| ch.is_ascii_digit())
        .count();
    let variable = |min: usize| -> (usize, usize) {
        let max = avail.saturating_sub(reserved).max(min).min(19);
        (min, max)
    };
    match c {
        'y' | 'u' | 'Y' => {
            if n == 2 {
                let (v, p) = take_number(text, pos, 2, 2, false)?;
                out.year = Some(v);
                out.two_digit_year = true;
                Some(p)
            } else {
                let (min, max) = variable(n);
                let (v, p) = take_number(text, pos, min, max, n >= 4 || n == 1)?;
                out.year = Some(v);
                out.two_digit_year = false;
                Some(p)
            }
        }
        'M' | 'L' if n >= 3 => {
            let (v, p) = if n == 3 {
                take_word(text, pos, MONTHS.iter().zip(1..).map(|(m, i)| (&m[..3], i)))?
            } else {
                take_word(text, pos, MONTHS.iter().zip(1..).map(|(m, i)| (*m, i)))?
            };
            out.month = Some(v);
            Some(p)
        }
        'E' | 'e' | 'c' if n >= 3 || c == 'E' => {
            let (_, p) = if n == 4 {
                take_word(text, pos, DAYS.iter().zip(1..).map(|(d, i)| (*d, i)))?
            } else {
                take_word(text, pos, DAYS.iter().zip(1..).map(|(d, i)| (&d[..3], i)))?
            };
            Some(p)
        }
        'G' => {
            let (_, p) = take_word(
                text,
                pos,
                [("Anno Domini", 1), ("AD", 1), ("BC", 0)].into_iter(),
            )?;
            Some(p)
        }
        'a' => {
            let (v, p) = take_word(text, pos, [("AM", 0), ("PM", 1)].into_iter())?;
            out.pm = Some(v == 1);
            Some(p)
        }
        'S' => {
            let (v, p) = take_number(text, pos, n, n, false)?;
            let digits = p - pos;
            out.nano = Some((v * 10i64.pow(9u32.saturating_sub(digits as u32))) as u32);
            Some(p)
        }
        'V' | 'z' | 'v' => {
            let len = text[pos..]
                .iter()
                .take_while(|ch| ch.is_ascii_alphanumeric() || "/_+-:".contains(**ch))
                .count();
            // Longest prefix that names a zone.
            for l in (1..=len).rev() {
                let s: String = text[pos..pos + l].iter().collect();
                if let Some(z) = zone_from_name(&s) {
                    out.zone = Some(z);
                    return Some(pos + l);
                }
            }
            None
        }
        'X' | 'x' | 'Z' | 'O' => {
            let mut p = pos;
            if c == 'O' || (c == 'Z' && n == 4) {
                let g: String = text[p..].iter().take(3).collect();
                if !g.eq_ignore_ascii_case("GMT") {
                    return None;
                }
                p += 3;
                if p >= text.len() || !(text[p] == '+' || text[p] == '-') {
                    out.zone = Some(Zone::Fixed(0));
                    return Some(p);
                }
            }
            if p < text.len()
                && text[p].eq_ignore_ascii_case(&'Z')
                && (c == 'X' || (c == 'Z' && n == 5))
            {
                out.zone = Some(Zone::Fixed(0));
                return Some(p + 1);
            }
            let len = text[p..]
                .iter()
                .enumerate()
                .take_while(|(i, ch)| {
                    (*i == 0 && (**ch == '+' || **ch == '-'))
                        || (*i > 0 && (ch.is_ascii_digit() || **ch == ':'))
                })
                .count();
            for l in (2..=len).rev() {
                let s: String = text[p..p + l].iter().collect();
                if let Some(o) = parse_offset(&s) {
                    out.zone = Some(Zone::Fixed(o));
                    return Some(p + l);
                }
            }
            None
        }
        _ => {
            let (min, max) = if n >= 2 { (n, n) } else { variable(1) };
            let (v, p) = take_number(text, pos, min, max, false)?;
            let v32 = u32::try_from(v).ok()?;
            match c {
                'M' | 'L' => out.month = Some(v32),
                'd' => out.day = Some(v32),
                'D' => out.day_of_year = Some(v32),
                'H' => out.hour24 = Some(v32),
                'k' => out.hour24 = Some(v32 % 24),
                'h' | 'K' => out.hour12 = Some(v32),
                'm' => out.minute = Some(v32),
                's' => out.second = Some(v32),
                'n' => out.nano = Some(v32),
                'A' => out.milli_of_day = Some(v32),
                _ => {}
            }
            Some(p)
        }
    }
}

/// Formats a timestamp (UTC millis) in `zone`.
pub fn format_timestamp(ms: i64, pattern: &Pattern, zone: &Zone) -> Result<String, String> {
    let local = zone
        .millis_to_local(ms)
        .ok_or_else(|| format!("Timestamp out of range: {ms}"))?;
    pattern.format(&local, Some(zone), true, true)
}

/// Parses text into UTC millis; a zone in the text wins over `zone`.
pub fn parse_timestamp(text: &str, pattern: &Pattern, zone: &Zone) -> Result<i64, String> {
    let parsed = pattern.parse(text)?;
    let local = parsed.datetime()?;
    Ok(parsed.zone.as_ref().unwrap_or(zone).local_to_millis(&local))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn format_timestamp(ms: i64, pattern: &str, zone: &Zone) -> Result<String, String> {
        super::format_timestamp(ms, &Pattern::compile(pattern)?, zone)
    }

    fn parse_timestamp(text: &str, pattern: &str, zone: &Zone) -> Result<i64, String> {
        super::parse_timestamp(text, &Pattern::compile(pattern)?, zone)
    }

    #[test]
    fn iso_text() {
        assert_eq!(format_iso_date(10), "1970-01-11");
        assert_eq!(format_iso_date(-1), "1969-12-31");
        assert_eq!(format_iso_time(60220000), "16:43:40");
        assert_eq!(format_iso_time(10), "00:00:00.01");
        assert_eq!(format_iso_timestamp(60220000000), "1971-11-28T23:46:40.000");
        assert_eq!(
            parse_iso_timestamp("2022-04-28T21:44:47.943"),
            Some(1651182287943)
        );
        assert_eq!(parse_iso_timestamp("2022-06-14"), Some(1655164800000));
        assert_eq!(parse_iso_date("2022-06-14"), Some(19157));
        assert_eq!(parse_iso_time("09:16:00"), Some(33360000));
    }

    #[test]
    fn formats_java_patterns() {
        let utc = Zone::of("UTC").unwrap();
        assert_eq!(
            format_timestamp(1526075913000, "yyyy-MM-dd HH:mm:ss", &utc).unwrap(),
            "2018-05-11 21:58:33"
        );
        let la = Zone::of("America/Los_Angeles").unwrap();
        assert_eq!(
            format_timestamp(1526075913000, "yyyy-MM-dd HH:mm:ss zzz", &la).unwrap(),
            "2018-05-11 14:58:33 PDT"
        );
        let london = Zone::of("Europe/London").unwrap();
        assert_eq!(
            format_timestamp(1526075913000, "yyyy-MM-dd HH:mm:ss zzz", &london).unwrap(),
            "2018-05-11 22:58:33 BST"
        );
        let d = NaiveDateTime::new(date_from_days(18993).unwrap(), NaiveTime::MIN);
        let p = Pattern::compile("dd-MMM-yyyy").unwrap();
        assert_eq!(p.format(&d, None, true, false).unwrap(), "01-Jan-2022");
        let p = Pattern::compile("dd-MM-yyyy'Sophia'").unwrap();
        let d = NaiveDateTime::new(date_from_days(-1).unwrap(), NaiveTime::MIN);
        assert_eq!(p.format(&d, None, true, false).unwrap(), "31-12-1969Sophia");
    }

    #[test]
    fn parses_java_patterns() {
        let utc = Zone::Fixed(0);
        assert_eq!(
            parse_timestamp("2018-05-11T21:58:33Z", "yyyy-MM-dd'T'HH:mm:ssX", &utc),
            Ok(1526075913000)
        );
        assert_eq!(
            parse_timestamp("2020-05-11T21:58:33z", "yyyy-MM-dd'T'HH:mm:ssX", &utc),
            Ok(1589234313000)
        );
        assert_eq!(
            parse_timestamp("2018-05-11T21:58:33 PST", "yyyy-MM-dd'T'HH:mm:ss zzz", &utc),
            Ok(1526101113000)
        );
        let p = Pattern::compile("hh:mm:ss a").unwrap();
        assert_eq!(
            millis_from_time(p.parse("01:00:00 Pm").unwrap().time().unwrap()),
            46800000
        );
        let p = Pattern::compile("HH:mm:ss'Lit'").unwrap();
        assert_eq!(
            millis_from_time(p.parse("00:01:05Lit").unwrap().time().unwrap()),
            65000
        );
        let p = Pattern::compile("dd-MMM-yyyy").unwrap();
        assert_eq!(
            days_from_date(p.parse("01-Jan-2022").unwrap().date().unwrap()),
            18993
        );
        let p = Pattern::compile("yyyyMMdd").unwrap();
        assert_eq!(
            days_from_date(p.parse("20220101").unwrap().date().unwrap()),
            18993
        );
        assert!(Pattern::compile("yyyy-MM-dd")
            .unwrap()
            .parse("abcd")
            .is_err());
    }
}
