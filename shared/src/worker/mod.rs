//! The queue worker (dedupe, rules, outbound calls).
