//! State shared by all VMs of one [`crate::Host`]: shared data (with CAS), shared queues
//! and metrics — what Envoy keeps per process rather than per Wasm instance.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};

use crate::types::{MetricType, Status};

#[derive(Default)]
pub(crate) struct Shared {
    data: Mutex<SharedData>,
    queues: Mutex<Queues>,
    metrics: Mutex<Metrics>,
}

#[derive(Default)]
struct SharedData {
    entries: HashMap<String, (Vec<u8>, u32)>,
    next_cas: u32,
}

#[derive(Default)]
struct Queues {
    by_name: HashMap<(String, String), u32>,
    queues: HashMap<u32, Queue>,
    next_id: u32,
}

struct Queue {
    owner_vm: u64,
    items: VecDeque<Vec<u8>>,
    /// Enqueues not yet announced to the owner with `proxy_on_queue_ready`.
    unannounced: usize,
}

/// A metric as the filter defined it.
///
/// ```
/// # use portcullis_harness::{Metric, MetricType};
/// let m = Metric { name: "hits".into(), kind: MetricType::Counter, value: 3 };
/// assert_eq!(m.envoy_name(), "wasmcustom.hits");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metric {
    /// The name the filter passed to `proxy_define_metric`.
    pub name: String,
    /// Counter, gauge or histogram.
    pub kind: MetricType,
    /// Current value: counter/gauge value; for histograms the last recorded sample.
    pub value: i64,
}

impl Metric {
    /// The stat name Envoy shows (`wasmcustom.` prefix).
    ///
    /// ```
    /// # use portcullis_harness::{Metric, MetricType};
    /// let m = Metric { name: "g".into(), kind: MetricType::Gauge, value: 0 };
    /// assert_eq!(m.envoy_name(), "wasmcustom.g");
    /// ```
    pub fn envoy_name(&self) -> String {
        format!("wasmcustom.{}", self.name)
    }
}

#[derive(Default)]
struct Metrics {
    list: Vec<Metric>,
    by_name: HashMap<(String, u8), u32>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave these maps half-updated in a way
    // that matters to a test, so recover from poisoning.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    pub(crate) fn get_data(&self, key: &str) -> Option<(Vec<u8>, u32)> {
        lock(&self.data).entries.get(key).cloned()
    }

    /// Envoy semantics: cas 0 = unconditional; otherwise must equal the current cas.
    pub(crate) fn set_data(&self, key: &str, value: Vec<u8>, cas: u32) -> Status {
        let mut d = lock(&self.data);
        d.next_cas = d.next_cas.wrapping_add(1).max(1);
        let next = d.next_cas;
        match d.entries.get_mut(key) {
            Some(e) => {
                if cas != 0 && cas != e.1 {
                    return Status::CasMismatch;
                }
                *e = (value, next);
            }
            None => {
                d.entries.insert(key.to_string(), (value, next));
            }
        }
        Status::Ok
    }

    pub(crate) fn all_data(&self) -> Vec<(String, Vec<u8>, u32)> {
        let d = lock(&self.data);
        let mut v: Vec<_> = d
            .entries
            .iter()
            .map(|(k, (val, cas))| (k.clone(), val.clone(), *cas))
            .collect();
        v.sort();
        v
    }

    pub(crate) fn register_queue(&self, vm_id: &str, name: &str, owner_vm: u64) -> u32 {
        let mut q = lock(&self.queues);
        let key = (vm_id.to_string(), name.to_string());
        if let Some(id) = q.by_name.get(&key).copied() {
            if let Some(queue) = q.queues.get_mut(&id) {
                queue.owner_vm = owner_vm;
            }
            return id;
        }
        q.next_id += 1;
        let id = q.next_id;
        q.by_name.insert(key, id);
        q.queues.insert(
            id,
            Queue {
                owner_vm,
                items: VecDeque::new(),
                unannounced: 0,
            },
        );
        id
    }

    pub(crate) fn resolve_queue(&self, vm_id: &str, name: &str) -> Option<u32> {
        lock(&self.queues)
            .by_name
            .get(&(vm_id.to_string(), name.to_string()))
            .copied()
    }

    pub(crate) fn enqueue(&self, id: u32, value: Vec<u8>) -> Status {
        let mut q = lock(&self.queues);
        match q.queues.get_mut(&id) {
            Some(queue) => {
                queue.items.push_back(value);
                queue.unannounced += 1;
                Status::Ok
            }
            None => Status::NotFound,
        }
    }

    pub(crate) fn dequeue(&self, id: u32) -> Result<Vec<u8>, Status> {
        let mut q = lock(&self.queues);
        match q.queues.get_mut(&id) {
            Some(queue) => queue.items.pop_front().ok_or(Status::Empty),
            None => Err(Status::NotFound),
        }
    }

    /// Queue ids owned by `vm` with enqueues not yet announced (one entry per enqueue).
    pub(crate) fn take_ready(&self, vm: u64) -> Vec<u32> {
        let mut q = lock(&self.queues);
        let mut out = Vec::new();
        let mut ids: Vec<u32> = q.queues.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            if let Some(queue) = q.queues.get_mut(&id) {
                if queue.owner_vm == vm {
                    for _ in 0..queue.unannounced {
                        out.push(id);
                    }
                    queue.unannounced = 0;
                }
            }
        }
        out
    }

    pub(crate) fn has_ready(&self, vm: u64) -> bool {
        lock(&self.queues)
            .queues
            .values()
            .any(|q| q.owner_vm == vm && q.unannounced > 0)
    }

    pub(crate) fn define_metric(&self, kind: MetricType, name: &str) -> u32 {
        let mut m = lock(&self.metrics);
        let key = (name.to_string(), kind as u8);
        if let Some(id) = m.by_name.get(&key) {
            return *id;
        }
        m.list.push(Metric {
            name: name.to_string(),
            kind,
            value: 0,
        });
        let id = m.list.len() as u32;
        m.by_name.insert(key, id);
        id
    }

    pub(crate) fn increment_metric(&self, id: u32, delta: i64) -> Status {
        let mut m = lock(&self.metrics);
        let Some(metric) = id.checked_sub(1).and_then(|i| m.list.get_mut(i as usize)) else {
            return Status::NotFound;
        };
        match metric.kind {
            MetricType::Counter if delta <= 0 => Status::BadArgument,
            MetricType::Counter | MetricType::Gauge => {
                metric.value = metric.value.wrapping_add(delta);
                Status::Ok
            }
            MetricType::Histogram => Status::BadArgument,
        }
    }

    pub(crate) fn record_metric(&self, id: u32, value: i64) -> Status {
        let mut m = lock(&self.metrics);
        let Some(metric) = id.checked_sub(1).and_then(|i| m.list.get_mut(i as usize)) else {
            return Status::NotFound;
        };
        match metric.kind {
            // Envoy: recordMetric on a counter adds the value.
            MetricType::Counter => metric.value = metric.value.wrapping_add(value),
            MetricType::Gauge | MetricType::Histogram => metric.value = value,
        }
        Status::Ok
    }

    pub(crate) fn get_metric(&self, id: u32) -> Result<i64, Status> {
        let m = lock(&self.metrics);
        let Some(metric) = id.checked_sub(1).and_then(|i| m.list.get(i as usize)) else {
            return Err(Status::NotFound);
        };
        match metric.kind {
            MetricType::Histogram => Err(Status::BadArgument),
            _ => Ok(metric.value),
        }
    }

    pub(crate) fn metrics(&self) -> Vec<Metric> {
        lock(&self.metrics).list.clone()
    }
}
