//! The virtual clock: what `clock_time_get` and `proxy_get_current_time_nanoseconds`
//! read, `proxy_on_tick` at the filter's period, and call replies that come due as it moves.

use std::time::Duration;

use crate::error::Error;

use super::Vm;

impl Vm {
    /// The tick period the filter set (`None` = ticks off).
    ///
    /// ```
    /// # use portcullis_harness::Host;
    /// # let wat = r#"(module (memory (export "memory") 1)
    /// #   (func (export "malloc") (param i32) (result i32) i32.const 1024)
    /// #   (func (export "proxy_abi_version_0_2_1")))"#;
    /// # let vm = Host::new(wat.as_bytes()).unwrap().start_vm(Default::default()).unwrap();
    /// assert_eq!(vm.tick_period(), None);
    /// ```
    pub fn tick_period(&self) -> Option<Duration> {
        match self.store.data().tick_period_ms {
            0 => None,
            ms => Some(Duration::from_millis(ms)),
        }
    }

    /// The virtual realtime clock (what `clock_time_get(REALTIME)` returns), in ns since
    /// the Unix epoch.
    ///
    /// ```
    /// # use portcullis_harness::Host;
    /// # use std::time::Duration;
    /// # let wat = r#"(module (memory (export "memory") 1)
    /// #   (func (export "malloc") (param i32) (result i32) i32.const 1024)
    /// #   (func (export "proxy_abi_version_0_2_1")))"#;
    /// # let mut vm = Host::new(wat.as_bytes()).unwrap().start_vm(Default::default()).unwrap();
    /// let t0 = vm.now_ns();
    /// vm.advance_time(Duration::from_millis(5)).unwrap();
    /// assert_eq!(vm.now_ns() - t0, 5_000_000);
    /// ```
    pub fn now_ns(&self) -> u64 {
        self.store.data().realtime_ns
    }

    /// Advances the virtual clock, firing `proxy_on_tick` and delayed/timed-out call
    /// replies in time order as they come due.
    ///
    /// ```
    /// # use portcullis_harness::Host;
    /// # use std::time::Duration;
    /// # let wat = r#"(module (memory (export "memory") 1)
    /// #   (func (export "malloc") (param i32) (result i32) i32.const 1024)
    /// #   (func (export "proxy_abi_version_0_2_1")))"#;
    /// # let mut vm = Host::new(wat.as_bytes()).unwrap().start_vm(Default::default()).unwrap();
    /// vm.advance_time(Duration::from_secs(10)).unwrap();
    /// ```
    pub fn advance_time(&mut self, by: Duration) -> Result<(), Error> {
        let target = self.store.data().monotonic_ns + by.as_nanos() as u64;
        loop {
            self.refresh_tick();
            let pending_due = self.store.data().pending.iter().map(|(t, _)| *t).min();
            let next = match (self.next_tick_ns, pending_due) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            match next {
                Some(t) if t <= target => {
                    self.set_clock(t);
                    if self.next_tick_ns == Some(t) {
                        let root = self.store.data().root_id;
                        self.next_tick_ns = Some(t + self.tick_seen_ms * 1_000_000);
                        self.call("proxy_on_tick", |c| &c.on_tick, root as i32, root)?;
                    }
                    self.settle()?;
                }
                _ => break,
            }
        }
        self.set_clock(target);
        self.settle()
    }

    fn set_clock(&mut self, mono: u64) {
        let s = self.store.data_mut();
        let delta = mono.saturating_sub(s.monotonic_ns);
        s.monotonic_ns = mono;
        s.realtime_ns += delta;
    }

    fn refresh_tick(&mut self) {
        let p = self.store.data().tick_period_ms;
        if p != self.tick_seen_ms {
            self.tick_seen_ms = p;
            self.next_tick_ns = (p > 0).then(|| self.store.data().monotonic_ns + p * 1_000_000);
        }
    }
}
