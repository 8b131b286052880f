//! The `echoloop` command line: parse the arguments, run the chosen part,
//! turn its outcome into one line and an exit code.
//!
//! Each outcome knows its exit code (`StartError::exit_code`,
//! `ClientError::exit_code`, `load::Failure::exit_code`,
//! `ReportError::exit_code`, `LogError::exit_code`; usage errors found
//! after parsing are `cli::Usage`, exit 2). Each `run_*` returns
//! `Result<(), Exit>`, and `main` is the one place that prints the line and
//! exits with the code. Every code of every subcommand:
//!
//! | code | server | client | load | report |
//! |---|---|---|---|---|
//! | 0 | stopped by SIGINT/SIGTERM | reply read to EOF and printed | clean run | merged and printed |
//! | 1 | cannot listen (in use, a Unix path that is not a socket), or the event loop failed | the event loop failed | errors (UDP: corrupted replies), or nothing echoed, or the event loop failed, or `--hdr-log` cannot be written or fell behind, or stdout fell behind `--interval` (told after the summary) | a file cannot be read, or the page cannot be written |
//! | 2 | usage (clap), `--max-connections` below `--threads`, `--threads`/`--udp` with a Unix socket, `--unix-mode` without one, `--tls` with `--udp-only` or a Unix socket, `--delay`/`--jitter` with UDP | usage (clap), bad SERVER, `tls://` without a port, `--cert` without `--key` | usage (clap), ADDR without a port, a `--source` of the other family or not of this machine, a `--tag` ending in `-connect`, `-s` outside 16–65,507 over UDP, churn or reconnect over UDP | usage, `--html` over an input; a file given twice, empty or not an interval log, a histogram whose declared lengths or shape are refused, or logs past the report's memory budget |
//! | 6 | | could not resolve | could not resolve ADDR's host | |
//! | 7 | | could not connect (UDP: ICMP port unreachable) | not one connection established | |
//! | 23 | | could not write the output | | |
//! | 26 | | could not read `--data-file` | | |
//! | 28 | | timed out (connecting, the TLS handshake, sending, receiving, writing stdout; UDP: no reply) | | |
//! | 35 | | the TLS handshake failed (not TLS, no common version or cipher, refused) | | |
//! | 55 | | sending failed, or reset before the request was all out | | |
//! | 56 | | receiving failed | | |
//! | 58 | `--tls-cert`/`--tls-key` unreadable, not PEM, not a pair, expired | `--cert`/`--key` unusable | `--cert`/`--key` unusable | |
//! | 60 | | the server's certificate cannot be trusted | | |
//! | 63 | | the reply outgrew `--max-reply` | | |
//! | 77 | `--tls-client-ca` unusable | `--cacert` unusable, or no system roots | `--cacert` unusable, or no system roots | |

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;
use std::time::Instant;

use clap::{CommandFactory, Parser};

use clap::error::ErrorKind;
use echoloop::cli::{
    Cli, ClientArgs, Command, Generate, LoadArgs, LoadTarget, ReportArgs, ServerArgs, Usage,
    default_tag,
};
use echoloop::client;
use echoloop::client::DeadlineStdout;
use echoloop::client::Target;
use echoloop::load::Update;
use echoloop::report::writer::{LogWriter, Record};
use echoloop::server::{self, Server};
use echoloop::shared::addr::Endpoint;
use echoloop::shared::duration::deadline_after;
use echoloop::shared::net::describe;
use echoloop::shared::offload::{Offload, Unfinished};
use std::sync::mpsc::Receiver;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let verbose = matches!(&cli.command, Command::Client(args) if args.verbose);
    // rustls warns about every malformed handshake a peer sends: under
    // hostile load that is one line per attacker's connection. Its own
    // lines are errors only, unless RUST_LOG asks (the server counts the
    // failures, and says each at debug level itself).
    let mut logger = env_logger::Builder::from_env(
        env_logger::Env::default().default_filter_or("info,rustls=error"),
    );
    if verbose {
        logger.parse_filters("echoloop=debug");
    }
    if matches!(&cli.command, Command::Server(args) if args.threads > 1) {
        // Several reactors: every line says which one wrote it.
        logger.format(|buf, record| {
            let thread = std::thread::current();
            let reactor = thread
                .name()
                .and_then(|name| name.strip_prefix("reactor-"))
                .map(|n| format!(" reactor={n}"))
                .unwrap_or_default();
            let style = buf.default_level_style(record.level());
            writeln!(
                buf,
                "[{} {style}{:<5}{style:#} {}{reactor}] {}",
                buf.timestamp(),
                record.level(),
                record.target(),
                record.args()
            )
        });
    }
    logger.init();
    let outcome = match cli.command {
        Command::Server(args) => run_server(args),
        Command::Client(args) => run_client(args),
        Command::Load(args) => run_load(*args),
        Command::Report(args) => run_report(args),
        Command::Generate(what) => generate(what),
    };
    // The one place where an outcome becomes an exit code.
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(Exit::Usage(sub, usage)) => {
            let mut cmd = Cli::command();
            let sub = cmd
                .find_subcommand_mut(sub)
                .map(|c| c.clone().bin_name(format!("echoloop {sub}")));
            let _ = sub.unwrap_or(cmd).error(usage.kind, usage.msg).print();
            ExitCode::from(2)
        }
        Err(Exit::Failed { line, code }) => {
            error_line(line);
            ExitCode::from(code)
        }
    }
}

/// How a subcommand ended, when not with success: a usage error (printed
/// in clap's format, exit 2), or a failure with its one line and the exit
/// code its error type gave it.
enum Exit {
    Usage(&'static str, Usage),
    Failed { line: String, code: u8 },
}

impl Exit {
    /// A failure: its line, and its code, which the error type knows.
    fn failed(e: impl std::fmt::Display, code: u8) -> Exit {
        Exit::Failed {
            line: e.to_string(),
            code,
        }
    }

    /// The event loop itself failed (exit 1).
    fn event_loop(e: std::io::Error) -> Exit {
        Exit::failed(format!("event loop failed: {e}"), 1)
    }
}

/// `echoloop load`: run, show a live line on a terminal, then the summary.
///
/// Exit codes: 0 clean run (a schedule not kept is a warning); 1 errors
/// happened (or nothing was echoed), the summary says which; 6 the host
/// could not be resolved; 7 not one connection could be established.
fn run_load(args: LoadArgs) -> Result<(), Exit> {
    raise_fd_limit(Some(args.connections));
    let addr = load_target(&args)?;
    args.check(&addr).map_err(|u| Exit::Usage("load", u))?;
    let mut config = args.config(addr);
    if let LoadTarget::Tls(host, _) = &args.addr {
        config.tls = Some(load_dialer(&args, host)?);
    }
    // The run's origin and the log's StartTime, read together: the log's
    // timestamps are offsets from the one, written as the other.
    let (origin, wall) = (Instant::now(), std::time::SystemTime::now());
    config.origin = Some(origin);
    // Ctrl-C or a CI job's SIGTERM ends the window, not the process: the
    // summary and the whole log are what a stopped soak test keeps.
    config.stop = echoloop::shared::stop::Stop::on_signals()
        .map_err(|e| Exit::failed(format!("cannot catch signals: {e}"), 1))?;
    let mut hdr_log = open_hdr_log(&args, &config, wall)?;
    let log_connects = args.messages_per_connection.is_some() || args.reconnect;
    // Open loop over a stream: the service time is logged beside latency.
    let open_loop = config.rate.is_some() && !config.udp;
    let tls = config.tls.is_some();
    let live = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        bar
    });
    let mut lines = match args.interval {
        Some(_) => Some(interval_printer(live.clone())?),
        None => None,
    };
    // --metrics: served from a loop of its own; the live figures feed it.
    let metrics = match args.metrics {
        Some(addr) => {
            let endpoint = echoloop::load::metrics::Endpoint::serve(addr).map_err(|e| {
                Exit::failed(
                    format!("cannot serve --metrics on {addr}: {}", describe(&e)),
                    1,
                )
            })?;
            log::info!("metrics on http://{}/metrics", endpoint.addr);
            Some(endpoint)
        }
        None => None,
    };
    // --repeat N: the same window N times, a pause between; one otherwise.
    let windows = args.repeat.unwrap_or(1);
    let mut repeats = echoloop::load::repeats::Repeats::default();
    let mut ends: Vec<WindowEnd> = Vec::new();
    let mut held: Vec<String> = Vec::new();
    for k in 1..=windows {
        if k > 1 && !pause(&config.stop, args.repeat_pause) {
            log::warn!(
                "{}: {} of {windows} windows run",
                config.stop.requested().unwrap_or("stopped"),
                k - 1
            );
            break;
        }
        let window = args.repeat.map(|_| k);
        let result = echoloop::load::run(config.clone(), |update| match update {
            Update::Live(p) => {
                if let Some(bar) = &live {
                    bar.set_message(p.line());
                    bar.tick();
                }
                if let Some(endpoint) = &metrics {
                    endpoint.set(echoloop::load::metrics::render(p));
                }
            }
            Update::Interval(interval) => {
                if let Some(lines) = &mut lines {
                    lines.push(if args.json {
                        interval.to_json()
                    } else {
                        interval.line()
                    });
                }
                if let Some(writer) = &mut hdr_log {
                    // Handed to the writer's thread; never waits.
                    writer.push(Record {
                        latency: interval.latency.clone(),
                        connect: log_connects.then(|| interval.connect_latency.clone()),
                        service: open_loop.then(|| interval.service.clone()),
                        handshake: tls.then(|| interval.handshake_latency.clone()),
                        at: interval.since_run_start,
                        length: interval.length,
                        errors: interval.errors,
                        offered: interval.offered(),
                        window,
                    });
                }
            }
        });
        let summary = result.map_err(Exit::event_loop)?;
        let end = end_window(&args, &config, summary, window, &mut hdr_log);
        // A window that could not run at all ends the repeats.
        let unreachable = end.summary.established == 0 && !config.udp;
        if window.is_some() {
            repeats.push(&end.summary.to_json(false));
        }
        let said = say_window(&args, &config, &end, &repeats, windows);
        match (&mut lines, said) {
            (_, None) => {}
            // The last window's text waits until the interval lines are
            // out (below); an earlier one joins them, in order, never
            // waiting on stdout.
            (Some(_), Some(text)) if k == windows || unreachable => held.push(text),
            (Some(lines), Some(text)) => lines.push(text),
            (None, Some(text)) => match &live {
                // Printed above the live line, which goes on.
                Some(bar) => bar.suspend(|| print_out(&text)),
                None => print_out(&text),
            },
        }
        ends.push(end);
        if unreachable {
            break;
        }
        // --start-at is the first window's start; the others follow it.
        config.start_at = None;
    }
    if let Some(bar) = &live {
        bar.finish_and_clear();
    }
    log::debug!("the run is over; its output follows");
    let finish_by = Instant::now() + echoloop::report::writer::FINISH_WAIT;
    let lines_failed = lines
        .take()
        .and_then(|lines| match lines.finish(finish_by) {
            Ok(()) => None,
            Err(Unfinished::Failed(e)) => Some(Exit::failed(
                format!("cannot write the interval lines: {}", describe(&e)),
                1,
            )),
            Err(Unfinished::Behind { lost, total, .. }) => Some(Exit::failed(
                format!(
                    "stdout fell behind: {lost} of {total} interval lines not written \
                 (a reader that stopped reading)"
                ),
                1,
            )),
        });
    for text in held {
        print_out(&text);
    }
    if args.repeat.is_some() && !repeats.is_empty() {
        print_out(&match args.json {
            true => repeats.to_json(),
            false => repeats.to_human(),
        });
    }
    // The summary is out; now whether the log is whole. (When the run
    // failed too, the log's line comes first and the run's code wins.)
    let log_failed = hdr_log.take().and_then(|writer| {
        let path = writer.path().display().to_string();
        let finished = writer.finish(finish_by);
        finished
            .err()
            .map(|e| Exit::failed(format!("cannot write {path}: {e}"), e.exit_code()))
    });
    // What did not get out is said after the summary; a window's own
    // failure, if any, is the exit code (the first window's that failed),
    // else the first of these.
    let broken: Vec<Exit> = ends
        .iter()
        .flat_map(|end| {
            let at = end
                .window
                .map(|k| format!(" (window {k})"))
                .unwrap_or_default();
            end.summary
                .thresholds
                .iter()
                .filter(|v| v.broken)
                .map(move |v| Exit::failed(format!("--fail-if {v}: the run fails on it{at}"), 3))
        })
        .collect();
    let mut output_failed = [lines_failed, log_failed]
        .into_iter()
        .flatten()
        .chain(broken);
    let first = match ends
        .iter()
        .find_map(|end| end.summary.failure(&config.addr))
    {
        Some(failure) => Exit::failed(&failure, failure.exit_code()),
        None => match output_failed.next() {
            Some(failed) => failed,
            None => return Ok(()),
        },
    };
    for also in output_failed {
        if let Exit::Failed { line, .. } = also {
            error_line(line);
        }
    }
    Err(first)
}

/// One window of a load run, over: its summary (thresholds judged) and
/// its number under `--repeat`.
struct WindowEnd {
    summary: echoloop::load::Summary,
    window: Option<u32>,
}

/// Ends a window: judges `--fail-if` on its summary as `--json` says it,
/// and ends the window in the `--hdr-log` with how its generator fared.
fn end_window(
    args: &LoadArgs,
    config: &echoloop::load::Config,
    mut summary: echoloop::load::Summary,
    window: Option<u32>,
    hdr_log: &mut Option<LogWriter>,
) -> WindowEnd {
    if !args.fail_if.is_empty() {
        let said: serde_json::Value =
            serde_json::from_str(&summary.to_json(false)).unwrap_or_default();
        summary.thresholds = args.fail_if.iter().map(|t| t.judge(&said)).collect();
    }
    if let Some(writer) = hdr_log {
        let busy = (summary.busy_is_measured() && !config.udp).then(|| summary.busy());
        let behind = summary.schedule.as_ref().is_some_and(|s| !s.kept());
        writer.end_window(window, busy, behind);
    }
    WindowEnd { summary, window }
}

/// Writes `text` and a newline to stdout (the summary: a reader that
/// does not read it holds the process, as any program's output would).
fn print_out(text: &str) {
    let mut stdout = std::io::stdout();
    let _ = writeln!(stdout, "{text}").and_then(|()| stdout.flush());
}

/// Says a window's warnings, and returns what it says on stdout: its
/// summary as always (or, under `--repeat`, one line in text, its summary
/// in JSON).
fn say_window(
    args: &LoadArgs,
    config: &echoloop::load::Config,
    end: &WindowEnd,
    repeats: &echoloop::load::repeats::Repeats,
    windows: u32,
) -> Option<String> {
    let summary = &end.summary;
    // Not one connection: the error line says it all, and a human summary
    // of zeros above it would only hide it (JSON still has its object).
    let connected = summary.established > 0 || config.udp;
    let text = match (args.json, end.window) {
        // JSON Lines: the intervals, then the summary, which says so (and
        // under --repeat, which window it closes).
        (true, None) => Some(summary.to_json(args.interval.is_some())),
        (true, Some(k)) => {
            let mut said: serde_json::Value =
                serde_json::from_str(&summary.to_json(true)).unwrap_or_default();
            if let Some(object) = said.as_object_mut() {
                object.insert("window".into(), k.into());
            }
            Some(said.to_string())
        }
        (false, None) => connected.then(|| summary.to_human(&config.shape())),
        (false, Some(_)) => connected.then(|| repeats.window_line(windows as usize)),
    };
    let at = end
        .window
        .map(|k| format!("window {k}: "))
        .unwrap_or_default();
    if let Some(schedule) = summary.schedule.as_ref().filter(|s| !s.kept()) {
        // Not a failure of the server: a warning, so that nobody takes the
        // figures for the rate that was asked for.
        log::warn!(
            "{at}the generator fell behind its schedule of {}: {}",
            config
                .rate
                .as_ref()
                .map(|p| p.describe())
                .unwrap_or_default(),
            schedule.shortfall()
        );
    }
    if let Some(advice) = summary.busy_advice(&config.shape()) {
        log::warn!("{at}{advice}");
    }
    text
}

/// Waits `pause` between two windows, or less if a signal stops the run:
/// whether the next window should run.
fn pause(stop: &echoloop::shared::stop::Stop, pause: std::time::Duration) -> bool {
    let until = deadline_after(Instant::now(), pause);
    while stop.requested().is_none() {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return true;
        }
        // The flag is a signal handler's: looked at every 20 ms.
        std::thread::sleep(left.min(std::time::Duration::from_millis(20)));
    }
    false
}

/// ADDR as the generator connects to it: resolved (a TCP name probed for
/// the address that accepts), or the Unix socket as given.
fn load_target(args: &LoadArgs) -> Result<Endpoint, Exit> {
    match &args.addr {
        LoadTarget::Unix(endpoint) => Ok(endpoint.clone()),
        LoadTarget::Tcp(host, port) | LoadTarget::Udp(host, port) | LoadTarget::Tls(host, port) => {
            // UDP has no connect to probe with: its first address is it.
            let probe = !matches!(args.addr, LoadTarget::Udp(..));
            echoloop::load::resolve(host, *port, args.timeout, probe)
                .map(Endpoint::Ip)
                .map_err(|failure| Exit::failed(&failure, failure.exit_code()))
        }
    }
}

/// `tls://`: the client configuration (shared by every connection and
/// thread, so sessions resume across them) and the server's name.
fn load_dialer(args: &LoadArgs, host: &str) -> Result<echoloop::shared::tls::Dialer, Exit> {
    let mut opts = args.tls.options();
    opts.resume = args.tls_resume.unwrap_or_default();
    // Two tickets a connection: as many as a server sends after each
    // handshake, so that every reconnect of a churning run finds one.
    let wanted = usize::try_from(args.connections).unwrap_or(usize::MAX);
    opts.tickets = wanted
        .saturating_mul(2)
        .clamp(8, echoloop::shared::tickets::MAX_TICKETS);
    let config =
        echoloop::shared::tls::client_config(&opts).map_err(|e| Exit::failed(&e, e.exit_code()))?;
    let name = args.sni.as_deref().unwrap_or(host);
    let name = echoloop::shared::tls::server_name(name)
        .map_err(|why| usage("load", ErrorKind::ValueValidation, why))?;
    Ok(echoloop::shared::tls::Dialer { config, name })
}

/// `--hdr-log`: the log opened (without blocking) and its writer started;
/// `start` is the wall-clock time of the run's origin.
fn open_hdr_log(
    args: &LoadArgs,
    config: &echoloop::load::Config,
    start: std::time::SystemTime,
) -> Result<Option<LogWriter>, Exit> {
    let Some(path) = &args.hdr_log else {
        return Ok(None);
    };
    let tag = args.tag.clone().unwrap_or_else(default_tag);
    let comment = args.log_comment(config, &tag);
    LogWriter::create(path, comment, start, tag)
        .map(Some)
        .map_err(|e| {
            let line = format!("cannot write {}: {e}", path.display());
            Exit::failed(line, e.exit_code())
        })
}

/// `--interval`'s lines go to stdout from a thread of their own: a reader
/// of stdout that stops reading must cost lines (counted, and an error at
/// the end), never the loop's time. Around a live line on a terminal.
fn interval_printer(live: Option<indicatif::ProgressBar>) -> Result<Offload<String>, Exit> {
    let printer = Offload::spawn("interval-lines", move |lines: Receiver<String>| {
        let mut out = std::io::stdout();
        for line in lines {
            match &live {
                Some(bar) => bar.suspend(|| writeln!(out, "{line}"))?,
                None => writeln!(out, "{line}")?,
            }
            out.flush()?;
        }
        Ok(())
    });
    printer.map_err(Exit::event_loop)
}

/// `echoloop generate`: the man pages into a directory, or a shell's
/// completion script on stdout.
fn generate(what: Generate) -> Result<(), Exit> {
    match what {
        Generate::Cert { dir, names } => {
            use echoloop::shared::certificate;
            let names = match names.is_empty() {
                true => certificate::LOOPBACK_NAMES.map(String::from).to_vec(),
                false => names,
            };
            let made = certificate::make(&names).map_err(|e| Exit::failed(e, 1))?;
            let (cert, key) = certificate::write(&dir, &made).map_err(|e| Exit::failed(e, 1))?;
            println!(
                "{} sha256 {}",
                cert.display(),
                echoloop::shared::tls::fingerprint(&made.cert)
            );
            println!("{} (mode 0600)", key.display());
            println!("names: {}", names.join(", "));
            Ok(())
        }
        Generate::Man { dir } => {
            let pages = echoloop::cli::write_man_pages(&dir).map_err(|e| {
                Exit::failed(
                    format!("cannot write {}: {}", dir.display(), describe(&e)),
                    1,
                )
            })?;
            for page in pages {
                println!("{}", page.display());
            }
            Ok(())
        }
        Generate::Complete { shell } => {
            let mut out = std::io::stdout();
            echoloop::cli::write_completions(shell, &mut out);
            out.flush()
                .map_err(|e| Exit::failed(format!("cannot write stdout: {}", describe(&e)), 1))
        }
    }
}

/// `echoloop report`: read, merge, print; the page if asked.
fn run_report(args: ReportArgs) -> Result<(), Exit> {
    args.check().map_err(|u| Exit::Usage("report", u))?;
    let fail = |e: echoloop::report::ReportError| Exit::failed(&e, e.exit_code());
    if args.compare {
        let runs = args.runs().map_err(|u| Exit::Usage("report", u))?;
        let runs = echoloop::report::compare::compare(&runs).map_err(fail)?;
        let text = match args.json {
            true => echoloop::report::compare::to_json(&runs),
            false => echoloop::report::compare::to_human(&runs),
        };
        let page = args
            .html
            .as_ref()
            .map(|out| (out, echoloop::report::html::compare_page(&runs)));
        return print_and_write(&text, page).map_err(fail);
    }
    let merged = echoloop::report::summarize(&args.files).map_err(fail)?;
    let text = if args.json {
        merged.to_json()
    } else {
        merged.to_human()
    };
    let page = args
        .html
        .as_ref()
        .map(|out| (out, echoloop::report::html::page(&merged)));
    print_and_write(&text, page).map_err(fail)
}

/// Prints a report's text, and writes its page if there is one.
fn print_and_write(
    text: &str,
    page: Option<(&std::path::PathBuf, String)>,
) -> Result<(), echoloop::report::ReportError> {
    let mut stdout = std::io::stdout();
    let _ = writeln!(stdout, "{text}").and_then(|()| stdout.flush());
    if let Some((out, page)) = page {
        std::fs::write(out, page).map_err(|source| {
            echoloop::report::ReportError::PageUnwritable {
                path: out.clone(),
                source,
            }
        })?;
    }
    Ok(())
}

/// `echoloop client`: work out the target and payload, run the exchange.
fn run_client(args: ClientArgs) -> Result<(), Exit> {
    let spec = match args.server {
        Some(spec) => spec,
        None => prompt_for_server()?,
    };
    let target = Target::parse(&spec, args.port, args.path.as_deref())
        .map_err(|msg| usage("client", ErrorKind::ValueValidation, msg))?;
    let fail = |e: client::ClientError| Exit::failed(&e, e.exit_code());
    let payload = match (args.data, args.data_file) {
        (Some(text), _) => text.into_bytes(),
        (None, Some(path)) => std::fs::read(&path)
            .map_err(|source| fail(client::ClientError::DataFile { path, source }))?,
        (None, None) => target.request(),
    };
    let tls = match target.transport {
        client::Transport::Tls => Some(
            echoloop::shared::tls::client_config(&args.tls.options())
                .map_err(|e| fail(client::ClientError::TlsSetup(e)))?,
        ),
        _ => None,
    };
    let opts = client::Config {
        tls,
        target,
        payload,
        half_close: args.half_close,
        raw: args.raw,
        connect_timeout: args.connect_timeout,
        timeout: args.timeout,
        max_reply: args.max_reply,
    };
    let deadline = deadline_after(Instant::now(), args.timeout);
    client::run(opts, &mut DeadlineStdout::new(deadline)).map_err(fail)?;
    Ok(())
}

/// Asks for the server on a terminal, as the classic client does; without
/// a terminal there is nobody to ask, which is a usage error. The prompt
/// goes to stderr so that stdout carries nothing but the reply.
fn prompt_for_server() -> Result<String, Exit> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        let msg = "SERVER is required when stdin is not a terminal";
        return Err(usage("client", ErrorKind::MissingRequiredArgument, msg));
    }
    let mut stderr = std::io::stderr();
    let _ = write!(stderr, "What server do you want to connect to? ").and_then(|()| stderr.flush());
    let mut line = String::new();
    match stdin.lock().read_line(&mut line) {
        Ok(_) if !line.trim().is_empty() => Ok(line.trim().to_string()),
        _ => Err(usage(
            "client",
            ErrorKind::MissingRequiredArgument,
            "no server given",
        )),
    }
}

/// A usage error of subcommand `sub` found outside clap.
fn usage(sub: &'static str, kind: ErrorKind, msg: impl Into<String>) -> Exit {
    Exit::Usage(
        sub,
        Usage {
            kind,
            msg: msg.into(),
        },
    )
}

/// `echoloop server`: bind, announce the address, run until a signal.
fn run_server(args: ServerArgs) -> Result<(), Exit> {
    raise_fd_limit(None);
    args.check().map_err(|u| Exit::Usage("server", u))?;
    let threads = args.threads as usize;
    let mut config = args.config();
    let tls = match args.tls_options() {
        Some(opts) => {
            let served = server::tls_server::setup(&opts, &server::tls_server::default_cert_dir())
                .map_err(|e| Exit::failed(&e, e.exit_code()))?;
            config.tls = Some(served.config.clone());
            Some(served)
        }
        None => None,
    };
    if config.faults.any() {
        log::info!("misbehaving on purpose: {}", config.faults.describe());
    }
    let start_failed = |e: server::StartError| Exit::failed(&e, e.exit_code());
    let summary = if threads == 1 {
        let mut server = Server::bind(config).map_err(start_failed)?;
        let ready = server.listening_on().map_err(Exit::event_loop)?;
        announce(&ready, &args, tls.as_ref());
        if let Some(at) = server.metrics_addr() {
            log::info!("metrics on http://{at}/metrics");
        }
        server.run().map(|totals| totals.summary_line())
    } else {
        let mut group = server::Group::bind(config, threads).map_err(start_failed)?;
        let scheme = match (args.udp_only, args.tls) {
            (true, _) => "udp://",
            (false, true) => "tls://",
            (false, false) => "",
        };
        announce(
            &format!("{scheme}{}", group.local_addr()),
            &args,
            tls.as_ref(),
        );
        if let Some(at) = group.metrics_addr() {
            log::info!("metrics on http://{at}/metrics");
        }
        group.run().map(|totals| totals.summary_line())
    };
    // The self-signed certificate was for this run only (Served's drop).
    drop(tls);
    let line = summary.map_err(Exit::event_loop)?;
    let mut stdout = std::io::stdout();
    let _ = writeln!(stdout, "{line}").and_then(|()| stdout.flush());
    Ok(())
}

/// Prints `listening on ADDR` (scripts and tests read the port from it:
/// exactly once, flushed, since stdout is a pipe for them), and with TLS,
/// the certificate's line before it: `tls certificate FILE sha256 AB:…`
/// (FILE is `-` for one given with --tls-cert); then logs how the server
/// is set up.
fn announce(ready: &str, args: &ServerArgs, tls: Option<&server::tls_server::Served>) {
    let mut stdout = std::io::stdout();
    if let Some(tls) = tls {
        let file = tls
            .cert_file
            .as_ref()
            .map_or_else(|| "-".to_string(), |p| p.path().display().to_string());
        let _ = writeln!(stdout, "tls certificate {file} sha256 {}", tls.fingerprint);
        log::info!(
            "tls: resumption {}, client certificates {}",
            args.tls_resumption,
            if args.tls_client_ca.is_some() {
                "required"
            } else {
                "not asked for"
            }
        );
    }
    // If nobody reads stdout the line is lost, but the server still serves.
    let _ = writeln!(stdout, "listening on {ready}").and_then(|()| stdout.flush());
    let reactors = match args.threads {
        1 => String::new(),
        n => format!(", {n} reactors"),
    };
    log::info!(
        "echo server ready: read size {} B, budget {} B per turn, backlog {}, \
         max connections {}, idle timeout {}{reactors}",
        args.read_size,
        args.budget,
        args.backlog,
        args.max_connections
            .map_or("none".to_string(), |n| n.to_string()),
        args.idle_timeout
            .map_or("none".to_string(), |d| format!("{d:?}"))
    );
}

/// Lifts the soft fd limit to the hard one, and warns when even that is
/// below what `needed` sockets will take.
fn raise_fd_limit(needed: Option<u64>) {
    match echoloop::shared::net::raise_fd_limit() {
        Ok(limit) => {
            log::debug!("open-files limit: {limit}");
            if let Some(needed) = needed
                && needed + 16 > limit
            {
                log::warn!(
                    "{needed} connections need more file descriptors than the limit ({limit}) \
                     allows: expect connect errors (raise it with ulimit -Hn)"
                );
            }
        }
        Err(e) => log::warn!("cannot raise the open-files limit: {e}"),
    }
}

/// `echoloop: error: ...` on stderr. Unlike `eprintln!`, a stderr that
/// cannot be written is not a panic: the exit code still tells.
fn error_line(err: impl std::fmt::Display) {
    let _ = writeln!(std::io::stderr(), "echoloop: error: {err}");
}
