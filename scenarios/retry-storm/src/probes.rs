//! What the run watches while the orders arrive (the warehouse's queue and
//! attempts, the orders waiting), what it audits afterwards (the
//! `reservations` table against the callers' answers and the warehouse's
//! books), and the metrics, evidence and plots it records.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use debuglab_harness::downstream::{Books, Downstream};
use debuglab_harness::plot::{self, Plot, PlotKind};
use debuglab_harness::postgres::RunDatabase;
use debuglab_harness::sampler::{sample_every, Sample, Sampler};
use debuglab_harness::workload::WorkloadOutcome;
use debuglab_harness::{HarnessError, Result, RunContext};

use tokio::sync::watch;

use crate::verdict::{
    Figures, OrderFigures, RecordFigures, WarehouseFigures, MAX_ATTEMPTS_PER_ORDER,
};
use crate::workload::{Answered, InFlight, ATTEMPT_TIMEOUT, ORDERS, ORDER_PACE, WAREHOUSE};
use crate::{order_key, Reservation};

/// The warehouse and the orders at one moment.
#[derive(Clone, Copy, Debug, Default)]
pub struct Moment {
    queue: usize,
    orders_waiting: usize,
}

/// Samples the warehouse's queue and the orders waiting every 20 ms; the
/// latest values, and the attempts of the last 100 ms, are also the live
/// run's gauges.
///
/// Once every order has arrived (never, in a live run, whose orders keep
/// arriving), it also tells the run to stop waiting when
/// each order still waiting has been sent more than
/// [`MAX_ATTEMPTS_PER_ORDER`] times: those are retried without a limit and
/// would never answer — a count, so the verdict need not wait for a clock.
pub struct Watch {
    sampler: Sampler<Moment>,
    stop_waiting: watch::Receiver<bool>,
    stopped: Arc<Mutex<Option<StoppedWaiting>>>,
    // Kept so that the orders' receivers never see the channel close.
    _stop: Arc<watch::Sender<bool>>,
}

/// When the run stopped waiting, and for how many orders.
#[derive(Clone, Copy, Debug)]
pub struct StoppedWaiting {
    /// On the warehouse's clock.
    pub at: Duration,
    /// Orders still waiting then.
    pub orders: usize,
}

/// What the watch saw.
pub struct Watched {
    /// The samples.
    pub moments: Vec<Sample<Moment>>,
    /// Whether, and when, the run stopped waiting for orders retried without a limit.
    pub stopped_waiting: Option<StoppedWaiting>,
}

impl Watch {
    /// Starts watching `warehouse` and the orders `in_flight`.
    pub fn start(
        ctx: &RunContext,
        warehouse: &Arc<Downstream>,
        in_flight: &Arc<InFlight>,
    ) -> Watch {
        let (warehouse, in_flight, progress, live) = (
            Arc::clone(warehouse),
            Arc::clone(in_flight),
            Arc::clone(ctx.progress()),
            ctx.is_live(),
        );
        let (stop, stop_waiting) = watch::channel(false);
        let (stop, stopped) = (Arc::new(stop), Arc::new(Mutex::new(None)));
        let (sender, noted) = (Arc::clone(&stop), Arc::clone(&stopped));
        let mut recent: Vec<u64> = Vec::new();
        let sampler = sample_every(Duration::from_millis(20), move || {
            let moment = Moment {
                queue: warehouse.queued().min(WAREHOUSE.queue_bound),
                orders_waiting: in_flight.waiting_count(),
            };
            if !live && !*sender.borrow() && retried_without_limit(&warehouse, &in_flight) {
                sender.send_replace(true);
                *noted
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(StoppedWaiting {
                    at: warehouse.elapsed(),
                    orders: moment.orders_waiting,
                });
            }
            // Five samples 20 ms apart: the attempts of the last 100 ms.
            recent.push(warehouse.totals().attempts);
            if recent.len() > 6 {
                recent.remove(0);
            }
            let last_100ms = recent.last().unwrap_or(&0) - recent.first().unwrap_or(&0);
            progress.gauge("attempts_per_100ms", last_100ms as f64);
            progress.gauge("warehouse_queue", moment.queue as f64);
            progress.gauge("orders_in_flight", moment.orders_waiting as f64);
            std::future::ready(moment)
        });
        Watch {
            sampler,
            stop_waiting,
            stopped,
            _stop: stop,
        }
    }

    /// Becomes `true` when the orders still waiting should stop waiting.
    pub fn stop_waiting(&self) -> watch::Receiver<bool> {
        self.stop_waiting.clone()
    }

    /// Stops sampling and returns what it saw.
    pub async fn stop(self) -> Watched {
        let moments = self.sampler.stop().await;
        let stopped_waiting = *self
            .stopped
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        Watched {
            moments,
            stopped_waiting,
        }
    }
}

/// Whether every order has arrived and each one still waiting has been sent
/// more than [`MAX_ATTEMPTS_PER_ORDER`] times.
fn retried_without_limit(warehouse: &Downstream, in_flight: &InFlight) -> bool {
    if in_flight.started() < ORDERS.requests {
        return false;
    }
    let waiting = in_flight.waiting();
    !waiting.is_empty()
        && waiting
            .iter()
            .all(|&order_id| warehouse.attempts(&order_key(order_id)) > MAX_ATTEMPTS_PER_ORDER)
}

/// One row of `reservations`: order, status, ticket.
pub type Row = (i64, String, Option<String>);

/// Reads the `reservations` table.
pub async fn read_reservations(database: &RunDatabase) -> Result<Vec<Row>> {
    let mut conn = database.probe_connection().await?;
    sqlx::query_as("SELECT order_id, status, ticket FROM reservations ORDER BY id")
        .fetch_all(&mut conn)
        .await
        .map_err(HarnessError::postgres("reading the reservations"))
}

/// The figures of a run: the answers, the warehouse's books, the table;
/// `first_order` is when the first order arrived, on the warehouse's clock.
pub fn figures(
    outcome: &WorkloadOutcome<Answered, Answered>,
    books: &Books,
    rows: &[Row],
    first_order: Duration,
) -> Figures {
    let answers: Vec<&Answered> = outcome
        .records
        .iter()
        .map(|record| match &record.result {
            Ok(answered) | Err(answered) => answered,
        })
        .collect();
    // Unanswered: those the run stopped waiting for, and those cut off at
    // the workload's hard limit (order `index + 1`).
    let finished: HashSet<usize> = outcome.records.iter().map(|record| record.index).collect();
    let mut unanswered: Vec<i64> = answers
        .iter()
        .filter(|answered| answered.result.is_none())
        .map(|answered| answered.order_id)
        .collect();
    unanswered.extend(
        (0..outcome.issued)
            .filter(|index| !finished.contains(index))
            .map(|index| index as i64 + 1),
    );
    let orders = order_figures(outcome, &answers, &unanswered, books, first_order);
    Figures {
        warehouse: warehouse_figures(books, &answers, &unanswered),
        records: record_figures(&answers, books, rows),
        orders,
    }
}

fn outage_end() -> Duration {
    WAREHOUSE
        .outage
        .map_or(Duration::ZERO, |outage| outage.end())
}

fn order_figures(
    outcome: &WorkloadOutcome<Answered, Answered>,
    answers: &[&Answered],
    unanswered: &[i64],
    books: &Books,
    first_order: Duration,
) -> OrderFigures {
    let mut orders = OrderFigures {
        offered: outcome.issued,
        answered: outcome.issued - unanswered.len(),
        unfinished: unanswered.len(),
        ..OrderFigures::default()
    };
    for answered in answers {
        let issued = books.ticket(&order_key(answered.order_id));
        let after_outage = answered.arrived >= outage_end();
        orders.arrived_after_outage += usize::from(after_outage);
        match &answered.result {
            None => {}
            Some(Ok(Reservation { ticket, .. })) => {
                orders.reserved += 1;
                if issued == Some(ticket.as_str()) {
                    orders.reserved_after_outage += usize::from(after_outage);
                } else {
                    orders.wrong_tickets += 1;
                }
            }
            Some(Err(error)) => {
                orders.failed += 1;
                if answered.answered < outage_end() {
                    orders.failed_while_down += 1;
                } else {
                    orders.first_error.get_or_insert_with(|| error.to_string());
                }
            }
        }
    }
    // Orders cut off at the hard limit count too, as not reserved: each
    // started on its pace after the first.
    let finished: HashSet<usize> = outcome.records.iter().map(|record| record.index).collect();
    orders.arrived_after_outage += (0..outcome.issued)
        .filter(|index| !finished.contains(index))
        .filter(|&index| first_order + ORDER_PACE * index as u32 >= outage_end())
        .count();
    orders
}

fn warehouse_figures(books: &Books, answers: &[&Answered], unanswered: &[i64]) -> WarehouseFigures {
    let attempts_of = |order_id: i64| {
        books
            .keys
            .get(&order_key(order_id))
            .map_or(0, |key| key.attempts)
    };
    let most_attempts_failed_while_down = answers
        .iter()
        .filter(|answered| {
            matches!(answered.result, Some(Err(_))) && answered.answered < outage_end()
        })
        .map(|answered| attempts_of(answered.order_id))
        .max()
        .unwrap_or(0);
    let totals = &books.totals;
    WarehouseFigures {
        attempts: totals.attempts,
        served: totals.served,
        served_to_nobody: totals.served_to_nobody,
        busy: totals.busy,
        down: totals.down,
        most_attempts_for_one_order: books
            .keys
            .values()
            .map(|key| key.attempts)
            .max()
            .unwrap_or(0),
        most_attempts_unanswered: unanswered
            .iter()
            .map(|&order_id| attempts_of(order_id))
            .max()
            .unwrap_or(0),
        most_attempts_failed_while_down,
        peak_attempts_per_bucket: books.buckets.iter().map(|b| b.attempts).max().unwrap_or(0),
        capacity_per_bucket: WAREHOUSE.capacity_per_bucket(),
        outage_ms: WAREHOUSE
            .outage
            .map_or(0.0, |outage| plot::millis(outage.length)),
        recovery_ms: recovery(books),
    }
}

/// How long after the outage the warehouse was itself again: from the first
/// bucket after which, until the last order arrived, it turned nobody away
/// and served nobody who had hung up. `None` if it never was.
pub fn recovery(books: &Books) -> Option<f64> {
    let outage = WAREHOUSE.outage?;
    let first = books.bucket_of(outage.end());
    let last_arrival = ORDER_PACE * (ORDERS.requests as u32).saturating_sub(1);
    let last = books
        .bucket_of(last_arrival)
        .min(books.buckets.len().saturating_sub(1));
    let troubled = |bucket: usize| {
        books
            .buckets
            .get(bucket)
            .is_some_and(|counts| counts.busy > 0 || counts.served_to_nobody > 0)
    };
    match (first..=last).rev().find(|&bucket| troubled(bucket)) {
        None => Some(0.0),
        Some(bucket) if bucket >= last => None,
        Some(bucket) => {
            let back = books.bucket * (bucket as u32 + 1);
            Some(plot::millis(back.saturating_sub(outage.end())))
        }
    }
}

fn record_figures(answers: &[&Answered], books: &Books, rows: &[Row]) -> RecordFigures {
    let mut by_order: HashMap<i64, Vec<&Row>> = HashMap::new();
    for row in rows {
        by_order.entry(row.0).or_default().push(row);
    }
    let mut records = RecordFigures {
        rows: rows.len(),
        duplicated: by_order.values().filter(|rows| rows.len() > 1).count(),
        ..RecordFigures::default()
    };
    for (order_id, rows) in &by_order {
        let issued = books.ticket(&order_key(*order_id));
        for (_, status, ticket) in rows {
            if status == "reserved" && (ticket.is_none() || ticket.as_deref() != issued) {
                records.unissued_tickets += 1;
            }
            if status == "failed" && issued.is_some() {
                records.failed_but_reserved += 1;
            }
        }
    }
    for answered in answers.iter().filter(|answered| answered.result.is_some()) {
        let Some(rows) = by_order.get(&answered.order_id) else {
            records.missing += 1;
            continue;
        };
        // (Unanswered orders are left out above.)
        let told = match &answered.result {
            Some(Ok(reservation)) => ("reserved", Some(reservation.ticket.as_str())),
            _ => ("failed", None),
        };
        if rows
            .iter()
            .any(|(_, status, ticket)| (status.as_str(), ticket.as_deref()) != told)
        {
            records.disagreeing += 1;
        }
    }
    records
}

/// Records the metrics, the evidence and the plots of a run.
pub fn record(ctx: &RunContext, figures: &Figures, books: &Books, watched: &Watched) {
    let (orders, warehouse, records) = (&figures.orders, &figures.warehouse, &figures.records);
    let after_pct =
        100.0 * orders.reserved_after_outage as f64 / orders.arrived_after_outage.max(1) as f64;
    for (name, value) in [
        ("amplification", warehouse.amplification(orders.offered)),
        ("reserved_after_outage_pct", after_pct),
        ("orders_offered", orders.offered as f64),
        ("orders_reserved", orders.reserved as f64),
        ("orders_failed", orders.failed as f64),
        ("orders_failed_while_down", orders.failed_while_down as f64),
        ("orders_unfinished", orders.unfinished as f64),
        ("warehouse_attempts", warehouse.attempts as f64),
        ("warehouse_served", warehouse.served as f64),
        ("served_to_nobody", warehouse.served_to_nobody as f64),
        ("answered_busy", warehouse.busy as f64),
        ("answered_down", warehouse.down as f64),
        (
            "attempts_peak_per_100ms",
            warehouse.peak_attempts_per_bucket as f64,
        ),
        (
            "most_attempts_for_one_order",
            warehouse.most_attempts_for_one_order as f64,
        ),
        ("reservation_rows", records.rows as f64),
        ("recovery_ms", warehouse.recovery_ms.unwrap_or(-1.0)),
    ] {
        ctx.metric(name, value);
    }
    record_evidence(ctx, figures, books);
    if let Some(stopped) = watched.stopped_waiting {
        ctx.evidence(format!(
            "the run stopped waiting at {} ms: each of the {} orders still waiting had been sent more than {MAX_ATTEMPTS_PER_ORDER} times",
            stopped.at.as_millis(),
            stopped.orders
        ));
    }
    record_plots(ctx, books, &watched.moments);
}

fn record_evidence(ctx: &RunContext, figures: &Figures, books: &Books) {
    let (orders, warehouse, records) = (&figures.orders, &figures.warehouse, &figures.records);
    let outage = WAREHOUSE
        .outage
        .unwrap_or(debuglab_harness::downstream::Outage {
            start: Duration::ZERO,
            length: Duration::ZERO,
        });
    ctx.evidence(format!(
        "{} orders, one every {} ms (seed {}); the warehouse: {} workers, {} ms an order ({:.0} per 100 ms), {} may wait, down from {} to {} ms; its client hangs up after {} ms",
        orders.offered, ORDER_PACE.as_millis(), ctx.seed(), WAREHOUSE.workers, WAREHOUSE.service_time.as_millis(),
        warehouse.capacity_per_bucket, WAREHOUSE.queue_bound, outage.start.as_millis(), outage.end().as_millis(),
        ATTEMPT_TIMEOUT.as_millis()
    ));
    ctx.evidence(format!(
        "the callers: {} reserved, {} failed ({} of them while the warehouse was down), {} still waiting when the run ended",
        orders.reserved, orders.failed, orders.failed_while_down, orders.unfinished
    ));
    ctx.evidence(format!(
        "the warehouse's books: {} attempts ({:.1} per order, at most {} for one order): {} served, {} of them to callers who had hung up; {} answered busy, {} answered down",
        warehouse.attempts, warehouse.amplification(orders.offered), warehouse.most_attempts_for_one_order,
        warehouse.served, warehouse.served_to_nobody, warehouse.busy, warehouse.down
    ));
    for (phase, from, to) in [
        ("before the outage", Duration::ZERO, outage.start),
        ("during the outage", outage.start, outage.end()),
        (
            "after the outage",
            outage.end(),
            books.elapsed + books.bucket,
        ),
    ] {
        let counts = books.between(from, to);
        let buckets = (books.bucket_of(to).min(books.buckets.len()))
            .saturating_sub(books.bucket_of(from))
            .max(1);
        let to_callers = counts.served - counts.served_to_nobody;
        let per_reservation = if to_callers == 0 {
            "none reserved".to_owned()
        } else {
            format!(
                "{:.1} attempts per order reserved",
                counts.attempts as f64 / to_callers as f64
            )
        };
        ctx.evidence(format!(
            "{phase}: {:.0} attempts per 100 ms (capacity {:.0}), {to_callers} served to waiting callers ({per_reservation}), {} to nobody, {} busy, {} down, queue up to {}",
            counts.attempts as f64 / buckets as f64, warehouse.capacity_per_bucket,
            counts.served_to_nobody, counts.busy, counts.down, counts.queue_max
        ));
    }
    ctx.evidence(match warehouse.recovery_ms {
        Some(ms) => format!(
            "the warehouse was itself again {ms:.0} ms after its outage ended ({:.1} times the outage's length)",
            ms / warehouse.outage_ms.max(1.0)
        ),
        None => "the warehouse was not itself again before the orders stopped: busy answers or work for callers who had hung up until the end".to_owned(),
    });
    ctx.evidence(format!(
        "the reservations table: {} rows; {} answered orders without one, {} orders with several, {} failed orders the warehouse did reserve (served after their caller hung up)",
        records.rows, records.missing, records.duplicated, records.failed_but_reserved
    ));
    if let Some(error) = &orders.first_error {
        ctx.evidence(format!("first failure after the outage: {error}"));
    }
}

fn record_plots(ctx: &RunContext, books: &Books, watched: &[Sample<Moment>]) {
    let per_bucket = |pick: fn(&debuglab_harness::downstream::Counts) -> u64| -> Vec<[f64; 2]> {
        books
            .buckets
            .iter()
            .enumerate()
            .map(|(index, counts)| {
                [
                    plot::millis(books.bucket * index as u32),
                    pick(counts) as f64,
                ]
            })
            .collect()
    };
    let arrivals_per_bucket = (books.bucket.as_millis() / ORDER_PACE.as_millis().max(1)) as f64;
    ctx.series("attempts", per_bucket(|c| c.attempts));
    ctx.series(
        "orders_arriving",
        (0..books.buckets.len())
            .filter(|&index| books.bucket * (index as u32) < ORDER_PACE * ORDERS.requests as u32)
            .map(|index| {
                [
                    plot::millis(books.bucket * index as u32),
                    arrivals_per_bucket,
                ]
            }),
    );
    ctx.series(
        "served_to_callers",
        per_bucket(|c| c.served - c.served_to_nobody),
    );
    ctx.series("served_to_nobody", per_bucket(|c| c.served_to_nobody));
    ctx.series("busy", per_bucket(|c| c.busy));
    ctx.series("down", per_bucket(|c| c.down));
    let capacity = WAREHOUSE.capacity_per_bucket();
    ctx.plot(
        Plot::new(
            "attempts",
            PlotKind::Line,
            "Attempts at the warehouse against its capacity",
        )
        .x("time since the first order", "ms")
        .y("per 100 ms", "attempts")
        .line("attempts", "attempts received")
        .line("orders_arriving", "orders arriving")
        .line("served_to_callers", "served to waiting callers")
        .bound(capacity, &format!("capacity: {capacity:.0} per 100 ms")),
    );
    ctx.plot(
        Plot::new(
            "answers",
            PlotKind::Line,
            "What the warehouse did with the attempts",
        )
        .x("time since the first order", "ms")
        .y("per 100 ms", "attempts")
        .line("served_to_callers", "served to waiting callers")
        .line("served_to_nobody", "served after the caller hung up")
        .line("busy", "turned away: queue full")
        .line("down", "turned away: down")
        .bound(capacity, &format!("capacity: {capacity:.0} per 100 ms")),
    );
    record_queue_plot(ctx, watched);
}

/// The warehouse's queue and the orders waiting, as the watch sampled them.
fn record_queue_plot(ctx: &RunContext, watched: &[Sample<Moment>]) {
    ctx.series(
        "queue",
        plot::sampled(watched, |moment| moment.queue as f64),
    );
    ctx.series(
        "orders_waiting",
        plot::sampled(watched, |moment| moment.orders_waiting as f64),
    );
    let bound = WAREHOUSE.queue_bound as f64;
    ctx.plot(
        Plot::new(
            "queue",
            PlotKind::Line,
            "The warehouse's queue and the orders waiting",
        )
        .x("time since the first order", "ms")
        .y("waiting", "attempts or orders")
        .line("queue", "attempts queued at the warehouse")
        .line("orders_waiting", "orders waiting for an answer")
        .bound(bound, &format!("queue bound: {bound:.0}")),
    );
}
