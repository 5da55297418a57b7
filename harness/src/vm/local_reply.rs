//! A local reply (`proxy_send_local_response`, or fail-close): the response Envoy sends
//! instead of the upstream's, run through this filter's response callbacks as Envoy's
//! encoder chain does.

use crate::error::Error;
use crate::types::Headers;

use super::Vm;

impl Vm {
    /// Sends a local reply through the response path, as Envoy's encoder chain does.
    pub(super) fn run_local_reply(&mut self, id: u32) -> Result<(), Error> {
        let Some(s) = self.store.data_mut().streams.get_mut(&id) else {
            return Ok(());
        };
        s.local_reply_new = false;
        s.ended = true;
        s.dirs[0].paused = None;
        s.dirs[0].resume = false;
        s.dirs[0].headers_avail = false;
        s.dirs[0].trailers_avail = false;
        let Some(reply) = s.record.local_reply.clone() else {
            return Ok(());
        };
        let mut headers: Headers = vec![(":status".to_string(), reply.status.to_string())];
        if !reply.body.is_empty() {
            headers.push(("content-length".to_string(), reply.body.len().to_string()));
            headers.push(("content-type".to_string(), "text/plain".to_string()));
        }
        headers.extend(reply.headers.iter().cloned());
        let started = s.dirs[1].headers_seen;
        s.record.response_headers = headers;
        s.record.response_body.clear();
        s.dirs[1].buffer.clear();
        s.dirs[1].paused = None;
        s.dirs[1].resume = false;
        if started {
            // Headers already went through the filter: Envoy replaces the response
            // without running this filter's callbacks again.
            s.record.response_body = reply.body;
            s.dirs[1].headers_avail = false;
            return Ok(());
        }
        s.dirs[1].headers_seen = true;
        s.dirs[1].headers_avail = true;
        let n = s.record.response_headers.len();
        let eos = reply.body.is_empty();
        self.call(
            "proxy_on_response_headers",
            |c| &c.on_response_headers,
            (id as i32, n as i32, eos as i32),
            id,
        )?;
        if let Some(s) = self.store.data_mut().streams.get_mut(&id) {
            s.dirs[1].headers_avail = false;
            s.dirs[1].buffer = reply.body;
        }
        if !eos {
            let n = self.stream(id).map(|s| s.dirs[1].buffer.len()).unwrap_or(0);
            self.call(
                "proxy_on_response_body",
                |c| &c.on_response_body,
                (id as i32, n as i32, 1),
                id,
            )?;
        }
        if let Some(s) = self.store.data_mut().streams.get_mut(&id) {
            let b = std::mem::take(&mut s.dirs[1].buffer);
            s.record.response_body.extend(b);
            s.local_reply_new = false;
        }
        Ok(())
    }
}
