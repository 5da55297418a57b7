//! Running what callbacks deferred until nothing is left: due call replies, queue
//! notifications, local replies and `proxy_continue_stream` resumes.

use crate::error::Error;

use super::Vm;

impl Vm {
    /// Delivers what is due now: call replies and `proxy_on_queue_ready` for queues this
    /// VM owns that other VMs (or it) enqueued to.
    ///
    /// ```
    /// # use portcullis_harness::Host;
    /// # let wat = r#"(module (memory (export "memory") 1)
    /// #   (func (export "malloc") (param i32) (result i32) i32.const 1024)
    /// #   (func (export "proxy_abi_version_0_2_1")))"#;
    /// # let mut vm = Host::new(wat.as_bytes()).unwrap().start_vm(Default::default()).unwrap();
    /// vm.dispatch().unwrap();
    /// ```
    pub fn dispatch(&mut self) -> Result<(), Error> {
        self.settle()
    }

    /// Runs everything deferred until nothing is left: due replies, queue
    /// notifications, local replies and resumes requested during callbacks.
    pub(super) fn settle(&mut self) -> Result<(), Error> {
        for _ in 0..10_000 {
            if self.failed.is_some() || self.deleted {
                return Ok(());
            }
            if self.store.data().done_called {
                self.delete_root()?;
                return Ok(());
            }
            let now = self.store.data().monotonic_ns;
            let due = self
                .store
                .data()
                .pending
                .iter()
                .position(|(t, _)| *t <= now);
            if let Some(i) = due {
                let (_, reply) = self.store.data_mut().pending.remove(i);
                self.deliver(reply)?;
                continue;
            }
            let serial = self.store.data().vm_serial;
            if self.store.data().shared.has_ready(serial) {
                let ids = self.store.data().shared.take_ready(serial);
                let root = self.store.data().root_id;
                for id in ids {
                    self.call(
                        "proxy_on_queue_ready",
                        |c| &c.on_queue_ready,
                        (root as i32, id as i32),
                        root,
                    )?;
                }
                continue;
            }
            let work = self.store.data().streams.iter().find_map(|(id, s)| {
                if s.local_reply_new {
                    Some((*id, None))
                } else if s.dirs[0].resume {
                    Some((*id, Some(0)))
                } else if s.dirs[1].resume {
                    Some((*id, Some(1)))
                } else {
                    None
                }
            });
            match work {
                Some((id, None)) => self.run_local_reply(id)?,
                Some((id, Some(dir))) => self.resume(id, dir)?,
                None => return Ok(()),
            }
        }
        Ok(())
    }
}
