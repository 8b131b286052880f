//! `echoloop load --threads N`: N generators side by side, each exactly
//! the one-thread [`Generator`] (or its UDP twin) on its
//! own `Poll`, with
//! nothing shared while they run. Their summaries are merged at the end
//! (latency histograms added, counters summed) and their live figures
//! while they run.
//!
//! How the run is split: connections as evenly as they go (the first
//! `c mod N` threads one more), and every rate (`--rate`,
//! `--connect-rate`) and `--messages` in proportion to a thread's
//! connections, so the whole schedule is the one asked for and latency
//! still counts from each message's due time. Each thread starts its clock
//! when its own connections are up.

use std::io;
use std::sync::mpsc;
use std::thread;

use super::config::Config;
use super::datagrams;
use super::engine;
use super::stream::Generator;
use std::collections::BTreeMap;

use super::outcome::{Interval, Progress, Summary, Update};

/// What a generator thread tells the thread that prints.
enum Message {
    /// Its latest live figures.
    Progress(usize, Progress),
    /// An interval of its that ended.
    Interval(Box<Interval>),
    /// It is done.
    Done(usize, Box<io::Result<Summary>>),
}

/// Runs `config.threads` generators (at most one per connection) and merges
/// what they hand out. `progress` gets the whole run's live figures.
pub(super) fn run(config: Config, mut update: impl FnMut(Update<'_>)) -> io::Result<Summary> {
    let parts = split(&config);
    let (tx, rx) = mpsc::channel();
    let mut handles = Vec::with_capacity(parts.len());
    for (number, part) in parts.into_iter().enumerate() {
        let tx = tx.clone();
        let handle = thread::Builder::new()
            .name(format!("generator-{number}"))
            .spawn(move || {
                let summary = run_one(part, |update| {
                    let _ = match update {
                        Update::Live(p) => tx.send(Message::Progress(number, p.clone())),
                        Update::Interval(i) => tx.send(Message::Interval(Box::new(i.clone()))),
                    };
                });
                let _ = tx.send(Message::Done(number, Box::new(summary)));
            })?;
        handles.push(handle);
    }
    drop(tx);
    let mut latest: Vec<Option<Progress>> = vec![None; handles.len()];
    let mut summaries: Vec<Option<Summary>> = (0..handles.len()).map(|_| None).collect();
    let mut first_error = None;
    let threads = handles.len();
    // Intervals by index, until every thread has sent its own.
    let mut pending: BTreeMap<u64, Interval> = BTreeMap::new();
    // Ends when every thread has said Done (or died: then the channel closes).
    for message in rx {
        match message {
            Message::Progress(number, p) => {
                latest[number] = Some(p);
                update(Update::Live(&merged(&latest)));
            }
            Message::Interval(interval) => {
                let index = interval.index;
                let whole = match pending.remove(&index) {
                    Some(mut so_far) => {
                        so_far.merge(&interval);
                        so_far
                    }
                    None => *interval,
                };
                if whole.threads == threads {
                    update(Update::Interval(&whole));
                } else {
                    pending.insert(index, whole);
                }
            }
            Message::Done(number, result) => match *result {
                Ok(summary) => summaries[number] = Some(summary),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            },
        }
    }
    // The last intervals of threads whose windows ended at other times.
    for interval in pending.into_values() {
        update(Update::Interval(&interval));
    }
    for handle in handles {
        if handle.join().is_err() {
            first_error.get_or_insert(io::Error::other("a generator thread panicked"));
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    let summaries: Vec<Summary> = summaries.into_iter().flatten().collect();
    Summary::merge(summaries).ok_or_else(|| io::Error::other("no generator finished"))
}

/// The per-thread configurations: `threads` parts (at most one per
/// connection), connections split evenly, rates and `--messages` in
/// proportion, source addresses continuing where the last part stopped.
fn split(config: &Config) -> Vec<Config> {
    let threads = config.threads.clamp(1, config.connections.max(1));
    let total = config.connections;
    let mut first = 0;
    (0..threads)
        .map(|number| {
            let connections = total / threads + usize::from(number < total % threads);
            let fraction = connections as f64 / total as f64;
            let mut sources = config.sources.clone();
            if !sources.is_empty() {
                let len = sources.len();
                sources.rotate_left(first % len);
            }
            first += connections;
            Config {
                connections,
                rate: config.rate.as_ref().map(|plan| plan.scaled(fraction)),
                connect_rate: config.connect_rate.map(|r| r * fraction),
                messages: config
                    .messages
                    .map(|m| ((m as f64 * fraction).ceil() as u64).max(1)),
                sources,
                threads: 1,
                ..config.clone()
            }
        })
        .collect()
}

/// The whole run's live figures from each thread's latest.
fn merged(latest: &[Option<Progress>]) -> Progress {
    let mut all = Progress::default();
    for p in latest.iter().flatten() {
        all.measured = all.measured.max(p.measured);
        all.messages += p.messages;
        all.bytes_received += p.bytes_received;
        all.p99_us = all.p99_us.max(p.p99_us);
        all.errors += p.errors;
        // The whole run is as far as its slowest thread.
        all.stage = all.stage.min(p.stage);
        match (&mut all.figures, &p.figures) {
            (Some(a), Some(b)) => a.merge(b),
            (None, Some(b)) => all.figures = Some(b.clone()),
            _ => {}
        }
    }
    all
}

/// One generator on this thread: datagrams or a stream, driven by the
/// one loop.
pub(super) fn run_one(config: Config, progress: impl FnMut(Update<'_>)) -> io::Result<Summary> {
    if config.udp {
        datagrams::run(config, progress)
    } else {
        engine::run(&mut Generator::new(config)?, progress)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::load::Plan;

    fn config(connections: usize, threads: usize) -> Config {
        Config {
            addr: "127.0.0.1:7".parse().unwrap(),
            connections,
            duration: Duration::from_secs(1),
            messages: Some(1000),
            rate: Some(Plan::Flat(900.0)),
            timeout: Duration::from_secs(1),
            sources: vec!["127.0.0.2".parse().unwrap(), "127.0.0.3".parse().unwrap()],
            threads,
            ..Config::default()
        }
    }

    /// Ten connections over four threads: 3, 3, 2, 2; the rate and the
    /// message count follow the connections; sources continue in turn.
    #[test]
    fn the_split_keeps_the_totals() {
        let parts = split(&config(10, 4));
        let conns: Vec<usize> = parts.iter().map(|p| p.connections).collect();
        assert_eq!(conns, [3, 3, 2, 2]);
        let rate: f64 = parts.iter().map(|p| p.rate.as_ref().unwrap().peak()).sum();
        assert!((rate - 900.0).abs() < 1e-9, "{rate}");
        let messages: u64 = parts.iter().map(|p| p.messages.unwrap()).sum();
        assert!((1000..1000 + 4).contains(&messages), "{messages}");
        let firsts: Vec<String> = parts.iter().map(|p| p.sources[0].to_string()).collect();
        assert_eq!(firsts, ["127.0.0.2", "127.0.0.3", "127.0.0.2", "127.0.0.2"]);
        assert!(parts.iter().all(|p| p.threads == 1));
    }

    /// More threads than connections: one thread per connection.
    #[test]
    fn never_a_thread_without_a_connection() {
        assert_eq!(split(&config(3, 8)).len(), 3);
    }
}
