//! Measuring one run: a server process pinned to core 0, `echoloop load`
//! pinned to core 1, and the CPU time each used (from /proc and
//! getrusage), with the load's JSON report. Included by the benches that
//! measure CPU time (`#[path = "servers/measure.rs"] mod measure;`).
#![allow(dead_code)] // each bench reads its own figures

use std::process::Command;

use crate::common::{ServerProcess, json_number};
use crate::servers::{clone_command, env_or, has_taskset};

/// What a measuring bench was asked for (environment: ROUNDS, SECS,
/// SECTIONS, TASKSET=0 to unpin), and the machine's core count.
#[derive(Debug)]
pub struct Setup {
    /// Rounds of each comparison.
    pub rounds: usize,
    /// Seconds per measurement.
    pub secs: f64,
    /// Which sections to run (a comma list).
    pub sections: String,
    /// Whether server and load are pinned to cores 0 and 1.
    pub pin: bool,
    /// Cores this process may use.
    pub cores: usize,
}

impl Setup {
    /// Reads the knobs, raises the fd limit, and prints the bench's first
    /// line: `NAME: C cores; R rounds x S s; pinned or not`.
    pub fn from_env(name: &str, sections: &str) -> Setup {
        echoloop::shared::net::raise_fd_limit().expect("raise the fd limit");
        let setup = Setup {
            rounds: env_or("ROUNDS", 3),
            secs: env_or("SECS", 2.0),
            sections: std::env::var("SECTIONS").unwrap_or_else(|_| sections.into()),
            pin: has_taskset() && std::env::var("TASKSET").as_deref() != Ok("0"),
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        };
        let pinning = if setup.pin {
            "server on core 0, load on core 1"
        } else {
            "NOT pinned"
        };
        println!(
            "{name}: {} cores; {} rounds x {} s; {pinning}",
            setup.cores, setup.rounds, setup.secs
        );
        setup
    }
}

/// MB/s of a bulk run of 1 MiB messages, from its JSON report.
pub fn bulk_mb_per_s(json: &str) -> f64 {
    json_number(json, "messages") * 1048576.0 / json_number(json, "duration_s") / 1e6
}

/// What one run cost: the server's and the load's CPU time (µs), and the
/// load's JSON report.
#[derive(Debug, Clone)]
pub struct Measured {
    /// The server process's CPU time during the run, µs.
    pub server_cpu_us: f64,
    /// The part of it spent in user space (the rest is the kernel's), µs.
    pub server_user_us: f64,
    /// The load process's CPU time, µs.
    pub load_cpu_us: f64,
    /// `echoloop load --json`'s report.
    pub json: String,
}

/// Starts the server `cmd` pinned to core 0, runs `echoloop load ARGS`
/// from core 1, and returns what each used.
pub fn measure(cmd: &Command, load: &[String], pin: bool) -> Option<Measured> {
    let server = ServerProcess::spawn(clone_command(cmd, pin.then_some(0)));
    let pid = server.pid();
    let (user_before, system_before) = cpu_ticks(pid);
    let load_before = children_cpu_us();
    let json = run_load(&server, load, pin)?;
    // The load process has been waited for; the server not yet.
    let load_used = children_cpu_us() - load_before;
    let (user, system) = cpu_ticks(pid);
    let (user, system) = (user - user_before, system - system_before);
    let us = |ticks: u64| ticks as f64 / 100.0 * 1e6; // USER_HZ is 100 on Linux
    Some(Measured {
        server_cpu_us: us(user + system),
        server_user_us: us(user),
        load_cpu_us: load_used,
        json,
    })
}

/// Runs `echoloop load ADDR ARGS --json`, pinned to core 1.
pub fn run_load(server: &ServerProcess, args: &[String], pin: bool) -> Option<String> {
    let mut load = Command::new(env!("CARGO_BIN_EXE_echoloop"));
    // The target as the server's ready line says it: `ADDR`, `udp://ADDR`
    // or `unix:PATH`.
    load.arg("load").arg(&server.ready).args(args).arg("--json");
    let out = clone_command(&load, pin.then_some(1)).output().ok()?;
    let json = String::from_utf8(out.stdout).ok()?;
    if !out.status.success() {
        eprintln!(
            "load against {} failed: {}{}",
            server.addr,
            json,
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    }
    Some(json)
}

/// utime and stime of `pid`, in clock ticks (all of its threads).
fn cpu_ticks(pid: u32) -> (u64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The command name may hold spaces; fields count from after its ')'.
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 here.
    (fields[11].parse().unwrap(), fields[12].parse().unwrap())
}

/// CPU time (user + system, µs) of this process's children that have
/// been waited for.
pub fn children_cpu_us() -> f64 {
    // SAFETY: getrusage fills the struct we pass; all-zero is a valid rusage.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage);
        usage
    };
    let us = |t: libc::timeval| t.tv_sec as f64 * 1e6 + t.tv_usec as f64;
    us(usage.ru_utime) + us(usage.ru_stime)
}

/// Whether `perf stat` can count syscall tracepoints here (Debian's
/// `linux-perf`, with `/proc/sys/kernel/perf_event_paranoid` allowing it).
pub fn perf_counts_syscalls() -> bool {
    crate::servers::has("perf")
        && Command::new("perf")
            .args(["stat", "-x,", "-e", "raw_syscalls:sys_enter", "--", "true"])
            .output()
            .is_ok_and(|o| {
                o.status.success()
                    && String::from_utf8_lossy(&o.stderr).lines().any(|l| {
                        l.split(',')
                            .next()
                            .is_some_and(|n| n.parse::<u64>().is_ok())
                    })
            })
}

/// The read system calls (`read` and `recvfrom`) of running processes,
/// counted by perf's syscall tracepoints between [`ReadCount::start`]
/// and [`ReadCount::stop`]. perf starts with its counters off and turns
/// them on when told through a FIFO, and says so through another: the
/// count starts exactly when `start` returns, with no guessing how long
/// perf takes to attach.
pub struct ReadCount {
    perf: std::process::Child,
    dir: std::path::PathBuf,
}

impl ReadCount {
    /// Starts counting the reads of `pids`; `None` (said on stderr)
    /// where perf cannot.
    pub fn start(pids: &[u32]) -> Option<ReadCount> {
        use std::io::{BufRead, Write};
        use std::os::unix::ffi::OsStrExt;
        let dir = std::env::temp_dir().join(format!("echoloop-perf-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).ok()?;
        for name in ["ctl", "ack"] {
            let path = std::ffi::CString::new(dir.join(name).as_os_str().as_bytes()).ok()?;
            // SAFETY: mkfifo(3) on a NUL-terminated path we own.
            if unsafe { libc::mkfifo(path.as_ptr(), 0o600) } != 0 {
                return None;
            }
        }
        let pids: Vec<String> = pids.iter().map(u32::to_string).collect();
        let control = format!(
            "fifo:{},{}",
            dir.join("ctl").display(),
            dir.join("ack").display()
        );
        let perf = Command::new("perf")
            .args(["stat", "-x,", "-D", "-1", "--control", &control, "-o"])
            .arg(dir.join("out"))
            .args([
                "-e",
                "syscalls:sys_enter_read,syscalls:sys_enter_recvfrom",
                "-p",
                &pids.join(","),
            ])
            // Its "Events enabled" lines; the counts go to the file.
            .stderr(std::process::Stdio::null())
            .spawn()
            .ok()?;
        let count = ReadCount { perf, dir };
        // perf opens both FIFOs as it starts; these opens wait for it.
        let mut ctl = std::fs::OpenOptions::new()
            .write(true)
            .open(count.dir.join("ctl"))
            .ok()?;
        ctl.write_all(b"enable\n").ok()?;
        let ack = std::fs::File::open(count.dir.join("ack")).ok()?;
        let mut line = String::new();
        std::io::BufReader::new(ack).read_line(&mut line).ok()?;
        (line.trim() == "ack").then_some(count)
    }

    /// Stops perf and returns the reads it counted.
    pub fn stop(mut self) -> Option<u64> {
        // SAFETY: kill(2) on perf, which this bench started.
        unsafe { libc::kill(self.perf.id() as i32, libc::SIGINT) };
        self.perf.wait().ok()?;
        let out = std::fs::read_to_string(self.dir.join("out")).ok()?;
        let counted: Vec<u64> = out
            .lines()
            .filter(|l| l.contains("sys_enter_"))
            .filter_map(|l| l.split(',').next()?.parse().ok())
            .collect();
        (counted.len() == 2).then(|| counted.iter().sum())
    }
}

impl Drop for ReadCount {
    fn drop(&mut self) {
        let _ = self.perf.kill();
        let _ = self.perf.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
