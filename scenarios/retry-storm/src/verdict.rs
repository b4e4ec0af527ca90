//! The verdict: a pure function of the figures a run collected.
//!
//! Each check is one line of the contract (see the crate's docs); each
//! problem line says what broke and, where a learner could have broken it on
//! purpose, why that is not a fix. Every figure is a count — the warehouse's
//! own books, the table's rows, the callers' answers — or a ratio of counts;
//! times appear only to place an order before, during or after the outage,
//! on the warehouse's clock.

use debuglab_harness::report::grouped;
use debuglab_harness::Verdict;

/// The most attempts per order the warehouse may receive, over the run and
/// its outage (the attempts it counted / the orders offered). A client that
/// waits longer after each failure sends a handful per order that arrives
/// during the 0.7 s outage and one per order otherwise: about 2 in
/// all, 3 if its first wait is short. One that asks again at once sends
/// hundreds.
pub const MAX_AMPLIFICATION: f64 = 4.0;

/// The least share of the orders arriving after the outage that must be
/// reserved: the warehouse is back, with three times the capacity they need.
pub const MIN_RESERVED_AFTER_OUTAGE: f64 = 0.95;

/// The most attempts the warehouse may receive for one order: an order asked
/// about more often than this is being retried without a limit.
pub const MAX_ATTEMPTS_PER_ORDER: u64 = 12;

/// The largest share of orders that may fail while the warehouse was up for
/// their last attempt.
pub const MAX_FAILED_SHARE: f64 = 0.05;

/// What a run measured, everything the verdict looks at.
#[derive(Clone, Debug, Default)]
pub struct Figures {
    /// The orders, as their callers saw them.
    pub orders: OrderFigures,
    /// The warehouse's own books.
    pub warehouse: WarehouseFigures,
    /// The `reservations` table, checked against the answers and the books.
    pub records: RecordFigures,
}

/// The orders, as their callers saw them.
#[derive(Clone, Debug, Default)]
pub struct OrderFigures {
    /// Orders that arrived (the workload started them).
    pub offered: usize,
    /// Orders answered, reserved or failed.
    pub answered: usize,
    /// Orders never answered: still being retried when the run stopped
    /// waiting, or cut off at the workload's hard limit.
    pub unfinished: usize,
    /// Orders answered with a ticket.
    pub reserved: usize,
    /// Orders answered with an error.
    pub failed: usize,
    /// Failed orders answered before the warehouse's outage ended.
    pub failed_while_down: usize,
    /// Orders that arrived after the outage ended.
    pub arrived_after_outage: usize,
    /// Of those, orders answered with the ticket the warehouse issued for them.
    pub reserved_after_outage: usize,
    /// Tickets answered that the warehouse did not issue for that order.
    pub wrong_tickets: usize,
    /// The first failure, as a caller saw it.
    pub first_error: Option<String>,
}

/// The warehouse's own books.
#[derive(Clone, Debug, Default)]
pub struct WarehouseFigures {
    /// Attempts it received.
    pub attempts: u64,
    /// Attempts it served (a ticket issued).
    pub served: u64,
    /// Of those, attempts whose caller had hung up before the answer.
    pub served_to_nobody: u64,
    /// Attempts it answered `BUSY` (queue full).
    pub busy: u64,
    /// Attempts it answered `DOWN` (the outage).
    pub down: u64,
    /// The most attempts it received for one order.
    pub most_attempts_for_one_order: u64,
    /// The most attempts it received for an order never answered.
    pub most_attempts_unanswered: u64,
    /// The most attempts it received for an order that failed while it was down.
    pub most_attempts_failed_while_down: u64,
    /// The most attempts it received in one 100 ms bucket.
    pub peak_attempts_per_bucket: u64,
    /// Attempts it can serve in one 100 ms bucket.
    pub capacity_per_bucket: f64,
    /// How long its outage lasted, in ms (its settings).
    pub outage_ms: f64,
    /// How long after the outage it served every waiting caller again, with
    /// nothing turned away or wasted until the orders stopped; `None` if it never did.
    pub recovery_ms: Option<f64>,
}

impl WarehouseFigures {
    /// Attempts received per order offered.
    pub fn amplification(&self, offered: usize) -> f64 {
        self.attempts as f64 / offered.max(1) as f64
    }
}

/// The `reservations` table, checked against the answers and the books.
#[derive(Clone, Debug, Default)]
pub struct RecordFigures {
    /// Rows in the table.
    pub rows: usize,
    /// Answered orders with no row.
    pub missing: usize,
    /// Orders with more than one row.
    pub duplicated: usize,
    /// `reserved` rows whose ticket the warehouse did not issue for that order.
    pub unissued_tickets: usize,
    /// Rows whose status is not what the order's caller was told.
    pub disagreeing: usize,
    /// Orders recorded `failed` that the warehouse did reserve (an attempt
    /// it served after its caller hung up). Evidence, not a problem: a
    /// timeout cannot tell.
    pub failed_but_reserved: usize,
}

/// Judges a run by its figures.
pub fn verdict(figures: &Figures) -> Verdict {
    let orders = &figures.orders;
    if orders.offered == 0 {
        return Verdict::from_problems(&["no order was offered".to_owned()], String::new);
    }
    let mut problems = load_problems(figures);
    problems.extend(answer_problems(figures));
    problems.extend(record_problems(figures));
    Verdict::from_problems(&problems, || {
        let warehouse = &figures.warehouse;
        let recovery = warehouse.recovery_ms.map_or_else(String::new, |ms| {
            format!(
                " was itself again {ms:.0} ms after its {:.0} ms outage,",
                warehouse.outage_ms
            )
        });
        format!(
            "All {} orders were answered ({} reserved, {} failed) and recorded once; the warehouse received {:.1} attempts per order,{recovery} and reserved {} of the {} orders that arrived after its outage.",
            orders.offered,
            orders.reserved,
            orders.failed,
            warehouse.amplification(orders.offered),
            orders.reserved_after_outage,
            orders.arrived_after_outage
        )
    })
}

/// What the orders did to the warehouse: how many attempts, and whether it
/// got back to work after its outage.
fn load_problems(figures: &Figures) -> Vec<String> {
    let (orders, warehouse) = (&figures.orders, &figures.warehouse);
    let mut problems = Vec::new();
    let amplification = warehouse.amplification(orders.offered);
    if amplification > MAX_AMPLIFICATION {
        problems.push(format!(
            "the warehouse received {} attempts for {} orders, {amplification:.1} per order \
             (at most {MAX_AMPLIFICATION:.0}), up to {} in 100 ms against its capacity of {:.0}",
            grouped(warehouse.attempts as f64),
            orders.offered,
            grouped(warehouse.peak_attempts_per_bucket as f64),
            warehouse.capacity_per_bucket
        ));
    }
    let after = orders.arrived_after_outage;
    if after > 0 && (orders.reserved_after_outage as f64) < MIN_RESERVED_AFTER_OUTAGE * after as f64
    {
        problems.push(format!(
            "after its {:.0} ms outage the warehouse reserved only {} of the {after} orders that \
             arrived (at least {:.0}% with three times the capacity they need): it served {} attempts \
             to callers who had already hung up and turned {} away as busy",
            warehouse.outage_ms,
            orders.reserved_after_outage,
            MIN_RESERVED_AFTER_OUTAGE * 100.0,
            grouped(warehouse.served_to_nobody as f64),
            grouped(warehouse.busy as f64)
        ));
    }
    problems
}

/// Whether every caller got an answer in time, and the right one.
fn answer_problems(figures: &Figures) -> Vec<String> {
    let (orders, warehouse) = (&figures.orders, &figures.warehouse);
    let most = warehouse.most_attempts_for_one_order;
    let most_said = grouped(most as f64);
    let mut problems = Vec::new();
    if orders.unfinished > 0 && warehouse.most_attempts_unanswered > MAX_ATTEMPTS_PER_ORDER {
        problems.push(format!(
            "{} orders were still being retried when the run ended and never answered their \
             callers (the warehouse received up to {most_said} attempts for one order)",
            orders.unfinished
        ));
    } else if orders.unfinished > 0 {
        problems.push(format!(
            "{} orders were never answered: still waiting when the run was cut off, after at \
             most {} attempts each",
            orders.unfinished,
            grouped(warehouse.most_attempts_unanswered as f64)
        ));
    } else if most > MAX_ATTEMPTS_PER_ORDER {
        problems.push(format!(
            "the warehouse received {most_said} attempts for a single order (at most \
             {MAX_ATTEMPTS_PER_ORDER}): an order asked about without a limit never gives up \
             on a warehouse that is gone"
        ));
    }
    if orders.failed_while_down > 0 {
        problems.push(format!(
            "{} orders were answered failed while the warehouse was still down, after at most {} \
             attempts each — yet its outage lasted only {:.0} ms: a brief outage should cost a \
             customer a short wait, not the order",
            orders.failed_while_down,
            warehouse.most_attempts_failed_while_down,
            warehouse.outage_ms
        ));
    }
    let failed_while_up = orders.failed - orders.failed_while_down.min(orders.failed);
    if failed_while_up as f64 > MAX_FAILED_SHARE * orders.offered as f64 {
        problems.push(format!(
            "{failed_while_up} of {} orders failed after the warehouse was back (at most {:.0}%){}",
            orders.offered,
            MAX_FAILED_SHARE * 100.0,
            orders
                .first_error
                .as_ref()
                .map_or_else(String::new, |error| format!(", the first with \"{error}\""))
        ));
    }
    if orders.wrong_tickets > 0 {
        problems.push(format!(
            "{} callers got a ticket the warehouse never issued for their order",
            orders.wrong_tickets
        ));
    }
    problems
}

/// Whether each answered order's outcome is in the table exactly once, as told.
fn record_problems(figures: &Figures) -> Vec<String> {
    let records = &figures.records;
    let mut problems = Vec::new();
    if records.missing > 0 {
        problems.push(format!(
            "{} answered orders left no outcome in the reservations table",
            records.missing
        ));
    }
    if records.duplicated > 0 {
        problems.push(format!(
            "{} orders have more than one outcome in the reservations table ({} rows for {} \
             answered orders): an outcome is recorded once, when the order is answered",
            records.duplicated, records.rows, figures.orders.answered
        ));
    }
    if records.unissued_tickets > 0 {
        problems.push(format!(
            "{} reservations carry a ticket the warehouse never issued for that order",
            records.unissued_tickets
        ));
    }
    if records.disagreeing > 0 {
        problems.push(format!(
            "{} outcomes in the reservations table differ from what the caller was told",
            records.disagreeing
        ));
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A healthy run: 220 orders, 70 of them during the outage, all reserved.
    fn healthy() -> Figures {
        Figures {
            orders: OrderFigures {
                offered: 220,
                answered: 220,
                reserved: 220,
                arrived_after_outage: 100,
                reserved_after_outage: 100,
                ..OrderFigures::default()
            },
            warehouse: WarehouseFigures {
                attempts: 350,
                served: 220,
                down: 130,
                most_attempts_for_one_order: 5,
                peak_attempts_per_bucket: 31,
                capacity_per_bucket: 30.0,
                outage_ms: 700.0,
                recovery_ms: Some(0.0),
                ..WarehouseFigures::default()
            },
            records: RecordFigures {
                rows: 220,
                ..RecordFigures::default()
            },
        }
    }

    fn summary(figures: &Figures) -> String {
        let verdict = verdict(figures);
        assert!(!verdict.healthy, "expected unhealthy: {}", verdict.summary);
        verdict.summary
    }

    /// The buggy client's run: hundreds of attempts per order, nothing reserved after the outage.
    fn stormed() -> Figures {
        let mut figures = healthy();
        figures.orders.answered = 60;
        figures.orders.reserved = 60;
        figures.orders.unfinished = 160;
        figures.orders.reserved_after_outage = 0;
        figures.warehouse.attempts = 61_234;
        figures.warehouse.served_to_nobody = 402;
        figures.warehouse.busy = 48_000;
        figures.warehouse.most_attempts_for_one_order = 3_100;
        figures.warehouse.most_attempts_unanswered = 3_100;
        figures.warehouse.peak_attempts_per_bucket = 5_400;
        figures.warehouse.recovery_ms = None;
        figures.records.rows = 60;
        figures
    }

    #[test]
    fn a_healthy_run_says_what_held() {
        let verdict = verdict(&healthy());
        assert!(verdict.healthy, "{}", verdict.summary);
        assert_eq!(
            verdict.summary,
            "All 220 orders were answered (220 reserved, 0 failed) and recorded once; the warehouse \
             received 1.6 attempts per order, was itself again 0 ms after its 700 ms outage, and \
             reserved 100 of the 100 orders that arrived after its outage."
        );
    }

    #[test]
    fn a_storm_is_named_by_the_warehouses_counts() {
        let summary = summary(&stormed());
        assert!(
            summary.starts_with(
                "The warehouse received 61,234 attempts for 220 orders, 278.3 per order (at most 4), up to 5,400 in 100 ms against its capacity of 30"
            ),
            "{summary}"
        );
        assert!(summary.contains(
            "after its 700 ms outage the warehouse reserved only 0 of the 100 orders that arrived"
        ));
        assert!(summary.contains("it served 402 attempts to callers who had already hung up and turned 48,000 away as busy"));
        assert!(summary.contains(
            "160 orders were still being retried when the run ended and never answered their callers (the warehouse received up to 3,100 attempts for one order)"
        ));
    }

    #[test]
    fn amplification_has_its_edge() {
        let mut figures = healthy();
        figures.warehouse.attempts = 880;
        assert!(verdict(&figures).healthy);
        figures.warehouse.attempts = 881;
        assert!(summary(&figures).contains("881 attempts for 220 orders, 4.0 per order"));
    }

    #[test]
    fn recovery_after_the_outage_has_its_edge() {
        let mut figures = healthy();
        figures.orders.reserved_after_outage = 95;
        figures.orders.reserved = 215;
        figures.orders.failed = 5;
        figures.records.rows = 220;
        assert!(verdict(&figures).healthy, "{}", verdict(&figures).summary);
        figures.orders.reserved_after_outage = 94;
        figures.orders.reserved = 214;
        figures.orders.failed = 6;
        assert!(summary(&figures).contains("reserved only 94 of the 100 orders that arrived"));
    }

    #[test]
    fn without_orders_after_the_outage_recovery_is_not_judged() {
        let mut figures = healthy();
        figures.orders.arrived_after_outage = 0;
        figures.orders.reserved_after_outage = 0;
        assert!(verdict(&figures).healthy);
    }

    #[test]
    fn giving_up_during_a_brief_outage_is_not_a_fix() {
        // One attempt each: the amplification looks perfect.
        let mut figures = healthy();
        figures.orders.reserved = 170;
        figures.orders.failed = 50;
        figures.orders.failed_while_down = 50;
        figures.warehouse.attempts = 220;
        figures.warehouse.most_attempts_for_one_order = 1;
        figures.warehouse.most_attempts_failed_while_down = 1;
        let summary = summary(&figures);
        assert!(
            summary.starts_with(
                "50 orders were answered failed while the warehouse was still down, after at most 1 attempts each"
            ),
            "{summary}"
        );
        assert!(summary.contains("its outage lasted only 700 ms: a brief outage should cost a customer a short wait, not the order"));
    }

    #[test]
    fn an_order_asked_about_without_a_limit_is_named() {
        let mut figures = healthy();
        figures.warehouse.most_attempts_for_one_order = MAX_ATTEMPTS_PER_ORDER;
        assert!(verdict(&figures).healthy);
        figures.warehouse.most_attempts_for_one_order = MAX_ATTEMPTS_PER_ORDER + 1;
        assert!(summary(&figures)
            .contains("received 13 attempts for a single order (at most 12): an order asked about without a limit"));
        // With orders cut off, that line gives way to the one about them.
        figures.orders.unfinished = 3;
        figures.warehouse.most_attempts_unanswered = MAX_ATTEMPTS_PER_ORDER + 1;
        let summary = summary(&figures);
        assert!(
            summary.contains("3 orders were still being retried"),
            "{summary}"
        );
        assert!(!summary.contains("for a single order"), "{summary}");
    }

    #[test]
    fn failures_while_the_warehouse_is_up_have_their_edge() {
        let mut figures = healthy();
        figures.orders.failed = 11; // 5% of 220
        figures.orders.reserved = 209;
        figures.orders.reserved_after_outage = 95;
        assert!(verdict(&figures).healthy, "{}", verdict(&figures).summary);
        figures.orders.failed = 12;
        figures.orders.reserved = 208;
        figures.orders.first_error = Some("warehouse: busy: the service's queue is full".into());
        assert!(summary(&figures).contains(
            "12 of 220 orders failed after the warehouse was back (at most 5%), the first with \"warehouse: busy"
        ));
    }

    #[test]
    fn tickets_the_warehouse_never_issued_are_named() {
        let mut figures = healthy();
        figures.orders.wrong_tickets = 220;
        figures.records.unissued_tickets = 220;
        figures.warehouse.attempts = 0;
        let summary = summary(&figures);
        assert!(
            summary.contains("220 callers got a ticket the warehouse never issued for their order")
        );
        assert!(summary.contains("220 reservations carry a ticket the warehouse never issued"));
    }

    #[test]
    fn outcomes_missing_twice_or_wrong_in_the_table_are_named() {
        let mut figures = healthy();
        figures.records.missing = 50;
        figures.records.duplicated = 40;
        figures.records.rows = 210;
        figures.records.disagreeing = 2;
        let summary = summary(&figures);
        assert!(summary.contains("50 answered orders left no outcome in the reservations table"));
        assert!(summary.contains("40 orders have more than one outcome in the reservations table (210 rows for 220 answered orders)"));
        assert!(summary
            .contains("2 outcomes in the reservations table differ from what the caller was told"));
    }

    #[test]
    fn a_failed_order_the_warehouse_reserved_is_evidence_not_a_problem() {
        let mut figures = healthy();
        figures.records.failed_but_reserved = 1;
        assert!(verdict(&figures).healthy);
    }

    #[test]
    fn orders_left_waiting_without_being_retried_are_never_answered() {
        // A wait of an hour after a failure: few attempts, and no answer.
        let mut figures = healthy();
        figures.orders.answered = 150;
        figures.orders.reserved = 150;
        figures.orders.unfinished = 70;
        figures.warehouse.attempts = 220;
        figures.warehouse.most_attempts_unanswered = 1;
        figures.records.rows = 150;
        let summary = summary(&figures);
        assert!(
            summary.starts_with(
                "70 orders were never answered: still waiting when the run was cut off, after at most 1 attempts each"
            ),
            "{summary}"
        );
        assert!(!summary.contains("still being retried"), "{summary}");
    }

    #[test]
    fn a_run_without_orders_is_unhealthy() {
        assert_eq!(summary(&Figures::default()), "No order was offered.");
    }
}
