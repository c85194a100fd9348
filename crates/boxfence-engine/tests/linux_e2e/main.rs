//! End to end, in a sealed lab: boxes made by the Linux engine, policies
//! enforced by the lab host's kernel, seen from inside the box.
//!
//! It has its own `main` (the lab's test runner, `harness = false`).

use boxfence_lab::harness::run_tests;
use boxfence_lab::require_root;

mod enforcement;
mod fallbacks;
mod flowtable;
mod held;
mod icmp;
#[path = "../support/lab_config.rs"]
mod lab_config;
mod lifecycle;
mod name_check;
mod protocols;
mod races;
mod resolver;
mod resolver_flood;
mod rig;
mod sandbox;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let shared = [
        enforcement::TESTS,
        resolver::TESTS,
        resolver_flood::TESTS,
        lifecycle::TESTS,
        protocols::TESTS,
        sandbox::TESTS,
        icmp::TESTS,
        races::SHARED_TESTS,
        flowtable::TESTS,
    ]
    .concat();
    let own = [
        races::TESTS,
        resolver_flood::OWN_TESTS,
        flowtable::OWN_TESTS,
        name_check::TESTS,
    ]
    .concat();
    let fallback_names: Vec<(String, rig::Test)> = fallbacks::pick(&shared);
    let tests: Vec<(&str, Case)> = shared
        .into_iter()
        .map(|(name, test)| (name, Case::Shared(test)))
        .chain(own.into_iter().map(|(name, test)| (name, Case::Own(test))))
        .chain(
            fallback_names
                .iter()
                .map(|(name, test)| (name.as_str(), Case::Fallback(*test))),
        )
        .collect();
    run_tests(
        "linux_e2e",
        &args[1..],
        &tests,
        || require_root("linux_e2e"),
        |case| match case {
            Case::Shared(test) => test(&rig::Rig::new()),
            Case::Own(test) => test(),
            Case::Fallback(test) => test(&rig::Rig::with_fallbacks()),
        },
    );
}

/// How a test gets its rig.
#[derive(Clone, Copy)]
enum Case {
    /// A usual one, made for it.
    Shared(rig::Test),
    /// Its own kind, made by the test.
    Own(rig::OwnRigTest),
    /// A usual one whose engine takes every kernel fallback.
    Fallback(rig::Test),
}
