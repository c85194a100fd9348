//! The syscall filter of every box: the container default that Debian's
//! containers-common ships (`/usr/share/containers/seccomp.json`, as
//! podman applies it for a container without extra capabilities, on
//! x86-64), kept here so it does not depend on that package, and
//! tightened: that profile lets `unshare`, `clone` with namespace flags,
//! `mount`, `keyctl` and `setns` through and relies on capabilities to
//! stop them, while here they are refused outright, so a box cannot reach
//! the kernel code behind new user namespaces, mounts or keyrings at all.
//! A unit test checks that every syscall allowed here is allowed there too.

use crate::spec::{Seccomp, SyscallArg, SyscallRule};

/// Syscalls allowed whatever their arguments: the containers-common list
/// for x86-64 (plus `socket`, which it allows without an audit
/// capability) minus [`REFUSED`].
pub const ALLOWED: &[&str] = &[
    "_llseek",
    "_newselect",
    "accept",
    "accept4",
    "access",
    "adjtimex",
    "alarm",
    "arch_prctl",
    "bind",
    "brk",
    "capget",
    "capset",
    "chdir",
    "chmod",
    "chown",
    "chown32",
    "clock_adjtime",
    "clock_adjtime64",
    "clock_getres",
    "clock_getres_time64",
    "clock_gettime",
    "clock_gettime64",
    "clock_nanosleep",
    "clock_nanosleep_time64",
    "close",
    "close_range",
    "connect",
    "copy_file_range",
    "creat",
    "dup",
    "dup2",
    "dup3",
    "epoll_create",
    "epoll_create1",
    "epoll_ctl",
    "epoll_ctl_old",
    "epoll_pwait",
    "epoll_pwait2",
    "epoll_wait",
    "epoll_wait_old",
    "eventfd",
    "eventfd2",
    "execve",
    "execveat",
    "exit",
    "exit_group",
    "faccessat",
    "faccessat2",
    "fadvise64",
    "fadvise64_64",
    "fallocate",
    "fanotify_mark",
    "fchdir",
    "fchmod",
    "fchmodat",
    "fchown",
    "fchown32",
    "fchownat",
    "fcntl",
    "fcntl64",
    "fdatasync",
    "fgetxattr",
    "flistxattr",
    "flock",
    "fork",
    "fremovexattr",
    "fsetxattr",
    "fstat",
    "fstat64",
    "fstatat64",
    "fstatfs",
    "fstatfs64",
    "fsync",
    "ftruncate",
    "ftruncate64",
    "futex",
    "futex_time64",
    "futimesat",
    "get_mempolicy",
    "get_robust_list",
    "get_thread_area",
    "getcpu",
    "getcwd",
    "getdents",
    "getdents64",
    "getegid",
    "getegid32",
    "geteuid",
    "geteuid32",
    "getgid",
    "getgid32",
    "getgroups",
    "getgroups32",
    "getitimer",
    "getpeername",
    "getpgid",
    "getpgrp",
    "getpid",
    "getppid",
    "getpriority",
    "getrandom",
    "getresgid",
    "getresgid32",
    "getresuid",
    "getresuid32",
    "getrlimit",
    "getrusage",
    "getsid",
    "getsockname",
    "getsockopt",
    "gettid",
    "gettimeofday",
    "getuid",
    "getuid32",
    "getxattr",
    "inotify_add_watch",
    "inotify_init",
    "inotify_init1",
    "inotify_rm_watch",
    "io_cancel",
    "io_destroy",
    "io_getevents",
    "io_setup",
    "io_submit",
    "ioctl",
    "ioprio_get",
    "ioprio_set",
    "ipc",
    "kill",
    "landlock_add_rule",
    "landlock_create_ruleset",
    "landlock_restrict_self",
    "lchown",
    "lchown32",
    "lgetxattr",
    "link",
    "linkat",
    "listen",
    "listxattr",
    "llistxattr",
    "lremovexattr",
    "lseek",
    "lsetxattr",
    "lstat",
    "lstat64",
    "madvise",
    "mbind",
    "membarrier",
    "memfd_create",
    "memfd_secret",
    "mincore",
    "mkdir",
    "mkdirat",
    "mknod",
    "mknodat",
    "mlock",
    "mlock2",
    "mlockall",
    "mmap",
    "mmap2",
    "modify_ldt",
    "mprotect",
    "mq_getsetattr",
    "mq_notify",
    "mq_open",
    "mq_timedreceive",
    "mq_timedreceive_time64",
    "mq_timedsend",
    "mq_timedsend_time64",
    "mq_unlink",
    "mremap",
    "msgctl",
    "msgget",
    "msgrcv",
    "msgsnd",
    "msync",
    "munlock",
    "munlockall",
    "munmap",
    "name_to_handle_at",
    "nanosleep",
    "newfstatat",
    "open",
    "openat",
    "openat2",
    "pause",
    "pidfd_getfd",
    "pidfd_open",
    "pidfd_send_signal",
    "pipe",
    "pipe2",
    "pkey_alloc",
    "pkey_free",
    "pkey_mprotect",
    "poll",
    "ppoll",
    "ppoll_time64",
    "prctl",
    "pread64",
    "preadv",
    "preadv2",
    "prlimit64",
    "process_mrelease",
    "process_vm_readv",
    "process_vm_writev",
    "pselect6",
    "pselect6_time64",
    "ptrace",
    "pwrite64",
    "pwritev",
    "pwritev2",
    "read",
    "readahead",
    "readdir",
    "readlink",
    "readlinkat",
    "readv",
    "reboot",
    "recv",
    "recvfrom",
    "recvmmsg",
    "recvmmsg_time64",
    "recvmsg",
    "remap_file_pages",
    "removexattr",
    "rename",
    "renameat",
    "renameat2",
    "restart_syscall",
    "rmdir",
    "rseq",
    "rt_sigaction",
    "rt_sigpending",
    "rt_sigprocmask",
    "rt_sigqueueinfo",
    "rt_sigreturn",
    "rt_sigsuspend",
    "rt_sigtimedwait",
    "rt_sigtimedwait_time64",
    "rt_tgsigqueueinfo",
    "sched_get_priority_max",
    "sched_get_priority_min",
    "sched_getaffinity",
    "sched_getattr",
    "sched_getparam",
    "sched_getscheduler",
    "sched_rr_get_interval",
    "sched_rr_get_interval_time64",
    "sched_setaffinity",
    "sched_setattr",
    "sched_setparam",
    "sched_setscheduler",
    "sched_yield",
    "seccomp",
    "select",
    "semctl",
    "semget",
    "semop",
    "semtimedop",
    "semtimedop_time64",
    "send",
    "sendfile",
    "sendfile64",
    "sendmmsg",
    "sendmsg",
    "sendto",
    "set_mempolicy",
    "set_robust_list",
    "set_thread_area",
    "set_tid_address",
    "setfsgid",
    "setfsgid32",
    "setfsuid",
    "setfsuid32",
    "setgid",
    "setgid32",
    "setgroups",
    "setgroups32",
    "setitimer",
    "setpgid",
    "setpriority",
    "setregid",
    "setregid32",
    "setresgid",
    "setresgid32",
    "setresuid",
    "setresuid32",
    "setreuid",
    "setreuid32",
    "setrlimit",
    "setsid",
    "setsockopt",
    "setuid",
    "setuid32",
    "setxattr",
    "shmat",
    "shmctl",
    "shmdt",
    "shmget",
    "shutdown",
    "sigaction",
    "sigaltstack",
    "signal",
    "signalfd",
    "signalfd4",
    "sigpending",
    "sigprocmask",
    "sigreturn",
    "sigsuspend",
    "socket",
    "socketcall",
    "socketpair",
    "splice",
    "stat",
    "stat64",
    "statfs",
    "statfs64",
    "statx",
    "symlink",
    "symlinkat",
    "sync",
    "sync_file_range",
    "syncfs",
    "syscall",
    "sysinfo",
    "tee",
    "tgkill",
    "time",
    "timer_create",
    "timer_delete",
    "timer_getoverrun",
    "timer_gettime",
    "timer_gettime64",
    "timer_settime",
    "timer_settime64",
    "timerfd",
    "timerfd_create",
    "timerfd_gettime",
    "timerfd_gettime64",
    "timerfd_settime",
    "timerfd_settime64",
    "times",
    "tkill",
    "truncate",
    "truncate64",
    "ugetrlimit",
    "umask",
    "uname",
    "unlink",
    "unlinkat",
    "utime",
    "utimensat",
    "utimensat_time64",
    "utimes",
    "vfork",
    "wait4",
    "waitid",
    "waitpid",
    "write",
    "writev",
];

/// Syscalls refused with EPERM: new namespaces, mounts, keyrings, BPF,
/// perf, and the other ways into kernel code a box has no use for.
pub const REFUSED: &[&str] = &[
    "unshare",
    "setns",
    "keyctl",
    "add_key",
    "request_key",
    "bpf",
    "perf_event_open",
    "mount",
    "umount",
    "umount2",
    "mount_setattr",
    "fsopen",
    "fsmount",
    "fsconfig",
    "fspick",
    "open_tree",
    "move_mount",
    "pivot_root",
    "userfaultfd",
    "syslog",
    "chroot",
];

/// The namespace flags of clone(2): CLONE_NEWNS, NEWCGROUP, NEWUTS,
/// NEWIPC, NEWUSER, NEWPID, NEWNET. A clone with any of them is refused.
const CLONE_NAMESPACES: u64 = 0x7E02_0000;

/// personality(2) values a program may set (as the containers profile).
const PERSONALITIES: [u64; 5] = [0, 0x8, 0x2_0000, 0x2_0008, 0xffff_ffff];

/// Each flag of [`CLONE_NAMESPACES`] on its own.
fn namespace_flags() -> impl Iterator<Item = u64> {
    (0..64)
        .map(|bit| 1u64 << bit)
        .filter(|flag| CLONE_NAMESPACES & flag != 0)
}

const EPERM: u32 = 1;
const ENOSYS: u32 = 38;

/// The filter as config.json carries it. Unknown syscalls get ENOSYS
/// (programs then fall back to older calls, as with clone3 below).
pub fn profile() -> Seccomp {
    let rule = |names: &[&str], action, errno_ret, args| SyscallRule {
        names: names.iter().map(|&n| n.to_owned()).collect(),
        action,
        errno_ret,
        args,
    };
    let mut syscalls = vec![
        rule(ALLOWED, "SCMP_ACT_ALLOW", None, Vec::new()),
        rule(REFUSED, "SCMP_ACT_ERRNO", Some(EPERM), Vec::new()),
        // clone3 passes its flags in memory, where seccomp cannot look:
        // ENOSYS makes the C library fall back to clone, judged below.
        rule(&["clone3"], "SCMP_ACT_ERRNO", Some(ENOSYS), Vec::new()),
        rule(
            &["clone"],
            "SCMP_ACT_ALLOW",
            None,
            vec![SyscallArg {
                index: 0,
                value: CLONE_NAMESPACES,
                value_two: 0,
                op: "SCMP_CMP_MASKED_EQ",
            }],
        ),
    ];
    // One refusal per namespace flag: libseccomp lets a rule without
    // argument conditions override the conditional ones of its syscall,
    // so "any other clone" cannot be a rule of its own.
    syscalls.extend(namespace_flags().map(|flag| {
        rule(
            &["clone"],
            "SCMP_ACT_ERRNO",
            Some(EPERM),
            vec![SyscallArg {
                index: 0,
                value: flag,
                value_two: flag,
                op: "SCMP_CMP_MASKED_EQ",
            }],
        )
    }));
    syscalls.extend(PERSONALITIES.iter().map(|&value| {
        rule(
            &["personality"],
            "SCMP_ACT_ALLOW",
            None,
            vec![SyscallArg {
                index: 0,
                value,
                value_two: 0,
                op: "SCMP_CMP_EQ",
            }],
        )
    }));
    Seccomp {
        default_action: "SCMP_ACT_ERRNO",
        default_errno_ret: ENOSYS,
        architectures: vec!["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        syscalls,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn refuses_what_the_issue_names_and_allows_none_of_it() {
        let allowed: HashSet<&str> = ALLOWED.iter().copied().collect();
        for name in [
            "unshare",
            "keyctl",
            "bpf",
            "perf_event_open",
            "mount",
            "setns",
        ] {
            assert!(REFUSED.contains(&name), "{name} is refused");
            assert!(!allowed.contains(name), "{name} is not allowed");
        }
        let profile = serde_json::to_value(profile()).expect("json");
        let first_clone = profile["syscalls"]
            .as_array()
            .expect("rules")
            .iter()
            .find(|r| r["names"][0] == "clone")
            .expect("a clone rule");
        assert_eq!(first_clone["args"][0]["op"], "SCMP_CMP_MASKED_EQ");
        assert_eq!(first_clone["args"][0]["value"], CLONE_NAMESPACES);
    }

    /// Nothing is allowed here that the containers default (when the host
    /// has it) does not allow to a container without extra capabilities.
    #[test]
    fn allows_no_more_than_the_containers_default() {
        let Ok(text) = std::fs::read_to_string("/usr/share/containers/seccomp.json") else {
            eprintln!("no containers-common profile on this host; skipped");
            return;
        };
        let theirs: serde_json::Value = serde_json::from_str(&text).expect("their profile");
        let mut allowed = HashSet::new();
        for rule in theirs["syscalls"].as_array().expect("rules") {
            // Rules for containers with a capability do not count (boxes
            // have none of those); rules for those without one do.
            let applies =
                rule["action"] == "SCMP_ACT_ALLOW" && rule["includes"].get("caps").is_none();
            if applies {
                for name in rule["names"].as_array().expect("names") {
                    allowed.insert(name.as_str().expect("name").to_owned());
                }
            }
        }
        for name in ALLOWED {
            assert!(
                allowed.contains(*name),
                "{name} is not in the containers default"
            );
        }
    }
}
