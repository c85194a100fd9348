//! How fast the machine the tests run on is.

/// True where the tests run under emulation: qemu's TCG in the kernel
/// matrix's VMs, for which `scripts/test-kernels` sets
/// `BOXFENCE_TEST_EMULATED=1`. Everything, a box's programs included, runs
/// many times slower there, so a load generator reaches less and a bound
/// on "at once" must be longer; the tests that size themselves by this
/// say how.
#[must_use]
pub fn emulated() -> bool {
    std::env::var("BOXFENCE_TEST_EMULATED").as_deref() == Ok("1")
}
