//! curl as the tests run it in a box: what they compare is the HTTP status
//! it got, or how it failed.

/// curl's options that print only the HTTP status (`-k`: the lab's
/// certificates are its own); the URL and any more options follow, later
/// ones winning.
pub const CURL_STATUS: [&str; 8] = [
    "curl",
    "-sk",
    "-m",
    "5",
    "-o",
    "/dev/null",
    "-w",
    "%{http_code}",
];

/// What a run of [`CURL_STATUS`] got: the status it printed, or
/// `err<exit code>` (7: refused, 6: unresolved, 28: timed out; -1: no
/// exit code).
pub fn curl_outcome(exit_code: Option<i32>, stdout: &str) -> String {
    match exit_code {
        Some(0) => stdout.to_owned(),
        code => format!("err{}", code.unwrap_or(-1)),
    }
}
