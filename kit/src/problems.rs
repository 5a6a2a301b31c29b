//! Collecting every configuration problem before refusing to start: a person fixing a
//! deployment sees everything that is wrong in one go, not one problem per restart.

use std::fmt::Display;

/// The problems found so far while checking a configuration. Each is one line that names the
/// flag (and its environment variable) or file it is about.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[must_use = "problems must be reported"]
pub struct Problems(Vec<String>);

impl Problems {
    /// No problem yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one problem.
    pub fn push(&mut self, problem: String) {
        self.0.push(problem);
    }

    /// Records several problems.
    pub fn extend(&mut self, problems: impl IntoIterator<Item = String>) {
        self.0.extend(problems);
    }

    /// The value of `checked`, or `None` after recording its error as `"{what}: {error}"`.
    pub fn check<T, E: Display>(&mut self, what: &str, checked: Result<T, E>) -> Option<T> {
        checked.map_err(|e| self.push(format!("{what}: {e}"))).ok()
    }

    /// The value of `checked`, or `None` after recording every problem it reported.
    pub fn take<T>(&mut self, checked: Result<T, Vec<String>>) -> Option<T> {
        checked.map_err(|ps| self.extend(ps)).ok()
    }

    /// Whether nothing is wrong so far.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many problems were found.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The problems, in the order they were found.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }

    /// `Ok(value)` when nothing is wrong, otherwise every problem.
    pub fn finish<T>(self, value: T) -> Result<T, Vec<String>> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(self.0)
        }
    }

    /// `Ok(value())` when nothing is wrong (`value` is not called otherwise), else every
    /// problem.
    pub fn finish_with<T>(self, value: impl FnOnce() -> T) -> Result<T, Vec<String>> {
        if self.0.is_empty() {
            Ok(value())
        } else {
            Err(self.0)
        }
    }
}

impl From<Problems> for Vec<String> {
    fn from(p: Problems) -> Self {
        p.0
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::Problems;

    #[test]
    fn every_problem_is_kept_in_order() {
        let mut p = Problems::new();
        assert!(p.is_empty());
        let port: Option<u16> = p.check("--port", "x".parse::<u16>());
        assert_eq!(port, None);
        assert_eq!(p.check("--workers", "4".parse::<u8>()), Some(4));
        p.push("--a and --b go together".into());
        let taken: Option<()> = p.take(Err(vec!["f: one".into(), "f: two".into()]));
        assert_eq!(taken, None);
        assert_eq!(p.take(Ok(7)), Some(7));
        p.extend(["last".to_string()]);
        assert_eq!(p.len(), 5);
        assert_eq!(
            p.clone().finish(()).unwrap_err(),
            vec![
                "--port: invalid digit found in string",
                "--a and --b go together",
                "f: one",
                "f: two",
                "last",
            ]
        );
        assert_eq!(
            p.iter().next(),
            Some("--port: invalid digit found in string")
        );
    }

    #[test]
    fn no_problem_gives_the_value() {
        assert_eq!(Problems::new().finish(3), Ok(3));
        let mut called = false;
        let mut p = Problems::new();
        p.push("bad".into());
        assert!(
            p.finish_with(|| {
                called = true;
            })
            .is_err()
        );
        assert!(!called, "the value is built only for a valid configuration");
    }
}
