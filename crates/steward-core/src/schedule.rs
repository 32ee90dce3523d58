//! Calendar arithmetic and cron schedules (UTC): five fields — minute, hour, day of month, month, day of week — or six
//! with seconds first. Each field takes `*`, numbers, ranges `a-b`, steps `*/n` and `a-b/n`, and
//! lists of those; day of week counts 0 (or 7) as Sunday. When both day fields are restricted, a
//! day matching either is due, as in Vixie cron.

use crate::error::{Error, Result};

#[derive(Debug, Clone, PartialEq)]
pub struct Cron {
    text: String,
    seconds: Vec<bool>,
    minutes: Vec<bool>,
    hours: Vec<bool>,
    days: Vec<bool>,
    months: Vec<bool>,
    weekdays: Vec<bool>,
    days_restricted: bool,
    weekdays_restricted: bool,
}

fn field(text: &str, name: &str, lo: u32, hi: u32) -> Result<Vec<bool>> {
    let bad = || Error::invalid(format!("cron {name} field '{text}' is not valid (values {lo}-{hi}, *, a-b, */n, lists)"));
    let mut set = vec![false; hi as usize + 1];
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (r, s.parse::<u32>().ok().filter(|s| *s > 0).ok_or_else(bad)?),
            None => (part, 1),
        };
        let (a, b) = match range {
            "*" => (lo, hi),
            r => match r.split_once('-') {
                Some((a, b)) => (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?),
                None => {
                    let v: u32 = r.parse().map_err(|_| bad())?;
                    (v, if part.contains('/') { hi } else { v })
                }
            },
        };
        if a < lo || b > hi || a > b {
            return Err(bad());
        }
        (a..=b).step_by(step as usize).for_each(|v| set[v as usize] = true);
    }
    Ok(set)
}

impl Cron {
    pub fn parse(text: &str) -> Result<Self> {
        let parts: Vec<&str> = text.split_whitespace().collect();
        let (sec, rest) = match parts.len() {
            5 => ("0", &parts[..]),
            6 => (parts[0], &parts[1..]),
            n => return Err(Error::invalid(format!("a cron schedule has 5 fields (or 6 with seconds first), '{text}' has {n}"))),
        };
        let mut weekdays = field(rest[4], "day-of-week", 0, 7)?;
        if weekdays[7] {
            weekdays[0] = true;
        }
        Ok(Self {
            text: text.to_owned(),
            seconds: field(sec, "second", 0, 59)?,
            minutes: field(rest[0], "minute", 0, 59)?,
            hours: field(rest[1], "hour", 0, 23)?,
            days: field(rest[2], "day-of-month", 1, 31)?,
            months: field(rest[3], "month", 1, 12)?,
            weekdays,
            days_restricted: rest[2] != "*",
            weekdays_restricted: rest[4] != "*",
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    fn day_matches(&self, day: u32, weekday: u32) -> bool {
        let (d, w) = (self.days[day as usize], self.weekdays[weekday as usize]);
        match (self.days_restricted, self.weekdays_restricted) {
            (true, true) => d || w,
            _ => d && w,
        }
    }

    /// The first due second strictly after `after` (seconds since the epoch), within 4 years.
    pub fn next_after(&self, after: i64) -> Option<i64> {
        let mut t = after + 1;
        let limit = after + 4 * 366 * 86_400;
        while t <= limit {
            let (days, secs) = (t.div_euclid(86_400), t.rem_euclid(86_400));
            let (_, month, day) = civil(days);
            let weekday = (days + 4).rem_euclid(7) as u32; // 1970-01-01 was a Thursday
            if !self.months[month as usize] || !self.day_matches(day, weekday) {
                t = (days + 1) * 86_400;
                continue;
            }
            let (hour, minute, second) = ((secs / 3600) as usize, (secs % 3600 / 60) as usize, (secs % 60) as usize);
            if !self.hours[hour] {
                t = days * 86_400 + (hour as i64 + 1) * 3600;
                continue;
            }
            if !self.minutes[minute] {
                t = days * 86_400 + hour as i64 * 3600 + (minute as i64 + 1) * 60;
                continue;
            }
            if !self.seconds[second] {
                t += 1;
                continue;
            }
            return Some(t);
        }
        None
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ` for milliseconds since the epoch (proleptic Gregorian, UTC).
pub fn iso8601(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (year, month, day) = civil(days);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// (year, month, day) of a day count since 1970-01-01 (Howard Hinnant's algorithm).
pub fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2026-11-24T01:02:03Z, a Tuesday.
    const T: i64 = 1_795_482_123;

    fn next(expr: &str) -> i64 {
        Cron::parse(expr).unwrap().next_after(T).unwrap()
    }

    #[test]
    fn next_fire_times() {
        assert_eq!(civil(T.div_euclid(86_400)), (2026, 11, 24));
        assert_eq!(next("* * * * *"), T - 3 + 60); // the next whole minute
        assert_eq!(next("*/5 * * * * *"), T + 2); // 01:02:05
        assert_eq!(next("0 3 * * *"), T - 3723 + 3 * 3600); // 03:00 today
        assert_eq!(next("30 0 * * *"), T - 3723 + 86_400 + 1800); // 00:30 tomorrow
        assert_eq!(next("0 9 1 * *"), 1_796_115_600); // 2026-12-01T09:00:00Z
        assert_eq!(next("0 0 * * 0"), 1_795_910_400); // Sunday 2026-11-29
        assert_eq!(next("0 0 * * 7"), 1_795_910_400);
        // Both day fields restricted: either matches (the 1st, or the next Wednesday).
        assert_eq!(next("0 0 1 * 3"), 1_795_564_800); // Wednesday 2026-11-25
        assert_eq!(next("15,45 1-2 * * *"), T - 123 + 15 * 60); // 01:15
        assert_eq!(next("0 0 29 2 *"), 1_835_395_200); // 2028-02-29
    }

    #[test]
    fn bad_schedules_name_the_field() {
        for (expr, needle) in [("* * *", "5 fields"), ("61 * * * *", "minute"), ("* 24 * * *", "hour"), ("* * 0 * *", "day-of-month"), ("* * * 13 *", "month"), ("* * * * 8", "day-of-week"), ("*/0 * * * *", "minute"), ("5-1 * * * *", "minute")] {
            let e = Cron::parse(expr).unwrap_err();
            assert!(e.message().contains(needle), "{expr}: {}", e.message());
        }
        assert_eq!(Cron::parse("0 0 30 2 *").unwrap().next_after(T), None);
    }
}
