//! Counters, summed in the filter and handed to the host in batches.
//!
//! Every `proxy_define_metric` / `proxy_increment_metric` is a host call, and host calls
//! are what a Wasm filter pays for (3–6 µs each under V8). [`Counters`] adds on the
//! request path without calling the host; the glue [`flush`](Counters::flush)es on a
//! timer tick (`metrics.flush_interval_ms`), defining each counter on its first flush and
//! incrementing it by what accumulated. Plain Rust: the host calls are passed in.

use std::collections::HashMap;

/// `portcullis.check.<check>.decision.<decision>.reason.<reason>.<label_key>.<label>`.
/// (Envoy prefixes `wasmcustom.`; each `.key.value` pair is a tag that `stats_tags` /
/// Istio `extraStatTags` can extract, see `policies/README.md`.)
pub fn metric_name(
    check: &str,
    decision: &str,
    reason: &str,
    label_key: &str,
    label: &str,
) -> String {
    format!("portcullis.check.{check}.decision.{decision}.reason.{reason}.{label_key}.{label}")
}

#[derive(Debug, Default)]
struct Counter {
    /// The host's id, once defined.
    id: Option<u32>,
    /// Not yet handed to the host.
    pending: u64,
}

/// (check, decision, reason, label key).
type Key = (&'static str, &'static str, &'static str, &'static str);

/// Counters keyed by (check, decision, reason, label key) then by label, so an increment of a
/// counter seen before allocates nothing.
///
/// ```
/// use portcullis_filter::metrics::Counters;
/// let mut c = Counters::default();
/// c.increment("ip_allowlist", "allowed", "partner_network", "partner", "acme");
/// c.increment("ip_allowlist", "allowed", "partner_network", "partner", "acme");
/// let mut sent = Vec::new();
/// c.flush(|name| Ok::<u32, ()>(name.len() as u32), |id, n| sent.push((id, n)), |_, _| {});
/// assert_eq!(sent, [(82, 2)]);
/// ```
#[derive(Debug, Default)]
pub struct Counters {
    by_key: HashMap<Key, HashMap<String, Counter>>,
    pending: bool,
}

impl Counters {
    /// Adds one to a counter (no host call).
    pub fn increment(
        &mut self,
        check: &'static str,
        decision: &'static str,
        reason: &'static str,
        label_key: &'static str,
        label: &str,
    ) {
        let by_label = self
            .by_key
            .entry((check, decision, reason, label_key))
            .or_default();
        // Borrowed lookup first: a hit allocates nothing.
        let counter = match by_label.get_mut(label) {
            Some(c) => c,
            None => by_label.entry(label.to_owned()).or_default(),
        };
        counter.pending += 1;
        self.pending = true;
    }

    /// True when some count has not been handed to the host yet.
    pub fn has_pending(&self) -> bool {
        self.pending
    }

    /// Hands every pending count to the host: `define(name)` once per counter (a failure
    /// goes to `failed(name, error)` and the count stays pending for the next flush), then
    /// `add(id, count)`.
    pub fn flush<E>(
        &mut self,
        mut define: impl FnMut(&str) -> Result<u32, E>,
        mut add: impl FnMut(u32, u64),
        mut failed: impl FnMut(&str, E),
    ) {
        let mut left = false;
        for ((check, decision, reason, label_key), by_label) in &mut self.by_key {
            for (label, c) in by_label.iter_mut() {
                if c.pending == 0 {
                    continue;
                }
                let id = match c.id {
                    Some(id) => id,
                    None => {
                        let name = metric_name(check, decision, reason, label_key, label);
                        match define(&name) {
                            Ok(id) => *c.id.insert(id),
                            Err(e) => {
                                failed(&name, e);
                                left = true;
                                continue;
                            }
                        }
                    }
                };
                add(id, c.pending);
                c.pending = 0;
            }
        }
        self.pending = left;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// A host: names → ids, ids → values.
    #[derive(Default)]
    struct FakeHost {
        ids: BTreeMap<String, u32>,
        values: BTreeMap<u32, u64>,
        defines: usize,
        adds: usize,
    }

    impl FakeHost {
        fn flush(&mut self, c: &mut Counters) {
            let FakeHost {
                ids,
                values,
                defines,
                adds,
            } = self;
            c.flush(
                |name| {
                    *defines += 1;
                    let next = ids.len() as u32;
                    Ok::<u32, ()>(*ids.entry(name.to_owned()).or_insert(next))
                },
                |id, n| {
                    *adds += 1;
                    *values.entry(id).or_default() += n;
                },
                |_, _| unreachable!(),
            );
        }

        fn value(&self, name: &str) -> Option<u64> {
            self.values.get(self.ids.get(name)?).copied()
        }
    }

    fn add_acme(c: &mut Counters, times: usize) {
        for _ in 0..times {
            c.increment(
                "ip_allowlist",
                "allowed",
                "partner_network",
                "partner",
                "acme",
            );
        }
    }

    #[test]
    fn counts_accumulate_until_flushed_then_go_in_one_call_per_counter() {
        let mut c = Counters::default();
        let mut host = FakeHost::default();
        assert!(!c.has_pending());
        add_acme(&mut c, 5);
        c.increment(
            "ip_allowlist",
            "denied",
            "ip_not_allowed",
            "partner",
            "none",
        );
        c.increment(
            "authorization",
            "denied",
            "no_allow_policy_matched",
            "policy",
            "none",
        );
        assert!(c.has_pending());
        assert_eq!(host.adds, 0, "nothing reaches the host before a flush");
        host.flush(&mut c);
        assert!(!c.has_pending());
        assert_eq!((host.defines, host.adds), (3, 3));
        let acme = metric_name(
            "ip_allowlist",
            "allowed",
            "partner_network",
            "partner",
            "acme",
        );
        assert_eq!(
            acme,
            "portcullis.check.ip_allowlist.decision.allowed.reason.partner_network.partner.acme"
        );
        assert_eq!(host.value(&acme), Some(5));
        // A flush with nothing pending calls nothing; a counter is defined only once.
        host.flush(&mut c);
        assert_eq!((host.defines, host.adds), (3, 3));
        add_acme(&mut c, 2);
        host.flush(&mut c);
        assert_eq!((host.defines, host.adds), (3, 4));
        assert_eq!(host.value(&acme), Some(7));
    }

    #[test]
    fn labels_are_told_apart_by_key_and_value() {
        let mut c = Counters::default();
        let mut host = FakeHost::default();
        c.increment(
            "authorization",
            "allowed",
            "allow_rule_matched",
            "policy",
            "a",
        );
        c.increment(
            "authorization",
            "allowed",
            "allow_rule_matched",
            "policy",
            "b",
        );
        c.increment(
            "authorization",
            "allowed",
            "allow_rule_matched",
            "partner",
            "a",
        );
        host.flush(&mut c);
        assert_eq!(host.defines, 3);
    }

    #[test]
    fn a_failed_define_keeps_the_count_for_the_next_flush() {
        let mut c = Counters::default();
        c.increment(
            "ip_allowlist",
            "denied",
            "ip_not_allowed",
            "partner",
            "none",
        );
        let mut failures = Vec::new();
        c.flush(
            |_| Err("no"),
            |_, _| unreachable!(),
            |n, e| failures.push((n.to_owned(), e)),
        );
        assert_eq!(failures.len(), 1);
        assert!(c.has_pending());
        let mut got = Vec::new();
        c.flush(
            |_| Ok::<u32, ()>(9),
            |id, n| got.push((id, n)),
            |_, _| unreachable!(),
        );
        assert_eq!(got, [(9, 1)]);
        assert!(!c.has_pending());
    }
}
