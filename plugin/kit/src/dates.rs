//! Calendar dates from the text forms HR exports use. A date is a day, not
//! an instant: a time or offset after it is ignored, never converted.

use crate::types::Date;

/// Parses `YYYY-MM-DD` (optionally followed by a time), `DD.MM.YYYY` or
/// `YYYY/MM/DD`, and checks the day exists.
pub fn parse(text: &str) -> Result<Date, String> {
    let text = text.trim();
    let day_part = text.split(['T', ' ']).next().unwrap_or_default();
    let numbers: Vec<&str> = day_part.split(['-', '.', '/']).collect();
    let parsed = match numbers.as_slice() {
        [y, m, d] if y.len() == 4 => (y.parse::<i32>(), m.parse::<u8>(), d.parse::<u8>()),
        [d, m, y] if y.len() == 4 && day_part.contains('.') => (y.parse(), m.parse(), d.parse()),
        _ => return Err(format!("`{text}` is not a date like 2024-03-01 or 01.03.2024")),
    };
    let (Ok(year), Ok(month), Ok(day)) = parsed else {
        return Err(format!("`{text}` is not a date like 2024-03-01 or 01.03.2024"));
    };
    let date = Date { year, month, day };
    if valid(&date) { Ok(date) } else { Err(format!("`{text}` is not a day of the calendar")) }
}

/// Whether the day exists (leap years included).
pub fn valid(d: &Date) -> bool {
    let leap = (d.year % 4 == 0 && d.year % 100 != 0) || d.year % 400 == 0;
    let days = match d.month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&d.day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_usual_forms_parse_and_times_are_ignored() {
        let d = Date { year: 2024, month: 3, day: 1 };
        for text in ["2024-03-01", "2024-03-01T23:30:00+01:00", "01.03.2024", "2024/03/01", " 2024-03-01 "] {
            assert_eq!(parse(text), Ok(d), "{text}");
        }
    }

    #[test]
    fn impossible_days_and_junk_are_refused() {
        assert!(parse("2024-02-30").unwrap_err().contains("calendar"));
        assert!(parse("2023-02-29").is_err());
        assert!(parse("2024-02-29").is_ok());
        assert!(parse("next monday").unwrap_err().contains("2024-03-01"));
        assert!(parse("03/01/2024").is_err(), "US order is ambiguous: refused");
    }
}
