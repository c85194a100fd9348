//! A test runner for end-to-end test binaries with `harness = false` (they
//! must run helper subcommands before any thread exists). It honours the
//! libtest flags tools rely on: `--list` names the tests without running
//! anything (no root needed), `--exact`, `--skip`, `--ignored` and name
//! filters; flags it has no use for (`--nocapture`, `--test-threads=1`)
//! are accepted and ignored.

use std::time::Instant;

/// What the command line asks for.
#[derive(Debug, Default, PartialEq, Eq)]
struct Selection {
    list: bool,
    exact: bool,
    ignored_only: bool,
    filters: Vec<String>,
    skips: Vec<String>,
}

impl Selection {
    fn parse(args: &[String]) -> Self {
        let mut selection = Self::default();
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--list" => selection.list = true,
                "--exact" => selection.exact = true,
                "--ignored" => selection.ignored_only = true,
                "--skip" => selection.skips.extend(args.next().cloned()),
                // Flags that take a value, given as a separate argument.
                "--test-threads" | "--format" | "--color" | "-Z" | "--logfile" => {
                    args.next();
                }
                flag if flag.starts_with('-') => {}
                filter => selection.filters.push(filter.to_owned()),
            }
        }
        selection
    }

    fn wants(&self, name: &str) -> bool {
        let matches = |pattern: &String| {
            if self.exact {
                name == pattern
            } else {
                name.contains(pattern.as_str())
            }
        };
        // None of these tests is ignored, so `--ignored` selects none.
        !self.ignored_only
            && (self.filters.is_empty() || self.filters.iter().any(matches))
            && !self.skips.iter().any(matches)
    }
}

/// Runs the `tests` the command line `args` (without the program name)
/// select, each through `run` (which sets up and tears down its rig), and
/// exits with status 1 if any failed. `--list` prints their names and
/// returns without calling `before_running` (where root is checked).
pub fn run_tests<T: Copy>(
    binary: &str,
    args: &[String],
    tests: &[(&str, T)],
    before_running: impl FnOnce() -> bool,
    run: impl Fn(T),
) {
    let selection = Selection::parse(args);
    let chosen: Vec<&(&str, T)> = tests.iter().filter(|(n, _)| selection.wants(n)).collect();
    if selection.list {
        for (name, _) in &chosen {
            println!("{name}: test");
        }
        return;
    }
    if chosen.is_empty() || !before_running() {
        return;
    }
    println!("running {} tests of {binary}", chosen.len());
    let mut failed = Vec::new();
    for &&(name, test) in &chosen {
        let started = Instant::now();
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(test)));
        let verdict = if outcome.is_ok() { "ok" } else { "FAILED" };
        println!("test {name} ... {verdict} ({:.1?})", started.elapsed());
        if outcome.is_err() {
            failed.push(name);
        }
    }
    if !failed.is_empty() {
        println!("failed: {failed:?}");
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<String> {
        line.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn flags_select_like_libtest() {
        let all = Selection::parse(&args("--nocapture --test-threads 1"));
        assert!(all.wants("a_test") && !all.list);
        let listed = Selection::parse(&args("--list --format terse"));
        assert!(listed.list && listed.wants("a_test"));
        let exact = Selection::parse(&args("--exact a_test"));
        assert!(exact.wants("a_test") && !exact.wants("a_test_too"));
        let filtered = Selection::parse(&args("resolver --skip flood"));
        assert!(filtered.wants("resolver_answers"));
        assert!(!filtered.wants("resolver_flood") && !filtered.wants("other"));
        assert!(!Selection::parse(&args("--ignored")).wants("a_test"));
    }
}
