//! The whole `Plan::evaluate` on arbitrary requests against two fixed realistic plans:
//! never panics, decides the same twice, and a header no rule reads never changes the
//! decision. The denial reply and the upstream header edits are built too.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_filter::engine::Plan;
use portcullis_filter::outcome::{log_decision, upstream_edits};
use portcullis_filter::request::RequestView;
use portcullis_fuzz::{FuzzRequest, IRRELEVANT_HEADER};
use std::sync::OnceLock;

static PLANS: OnceLock<Vec<Plan>> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let Some(fuzz) = FuzzRequest::from_bytes(data) else {
        return;
    };
    let req = fuzz.to_request(&[]);
    let with_extra = fuzz.to_request(&[(IRRELEVANT_HEADER, &fuzz.irrelevant_value)]);
    for plan in PLANS.get_or_init(portcullis_fuzz::fixed_plans) {
        let decision = plan.evaluate(&req);
        assert_eq!(decision, plan.evaluate(&req), "not deterministic");
        if !fuzz.has_header(IRRELEVANT_HEADER) {
            assert_eq!(
                decision,
                plan.evaluate(&with_extra),
                "an irrelevant header changed the decision"
            );
        }
        if let Some(denial) = &decision.denial {
            let reply = plan.denial_reply(denial, Some("fuzz-request-id"));
            assert!(
                reply.status >= 200 && reply.status < 600,
                "status {}",
                reply.status
            );
        }
        for edit in upstream_edits(plan, req.headers(), &decision) {
            std::hint::black_box(edit);
        }
        log_decision(plan, req.headers(), &decision, |line| {
            std::hint::black_box(line);
        });
    }
});
