//! The idempotency record and the acquire decision, shared by the DynamoDB adapter (which
//! encodes it as one conditional write) and the in-memory store (which runs it under a lock).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    InProgress,
    Completed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::InProgress => "IN_PROGRESS",
            Status::Completed => "COMPLETED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "IN_PROGRESS" => Some(Status::InProgress),
            "COMPLETED" => Some(Status::Completed),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub status: Status,
    /// Who holds the lease: a fresh token per attempt, so complete/release by a holder that
    /// timed out cannot touch its successor's record.
    pub owner: String,
    /// Epoch ms after which an IN_PROGRESS holder is presumed dead and may be taken over.
    pub lease_until_ms: i64,
    pub payload_hash: String,
    /// Epoch s after which the record no longer counts (TTL attribute; TTL only collects garbage).
    pub expires_at: i64,
}

/// A request to hold a key while its event is processed.
#[derive(Debug, Clone)]
pub struct LeaseRequest {
    pub owner: String,
    pub payload_hash: String,
    pub now_ms: i64,
    pub lease_until_ms: i64,
    pub expires_at: i64,
}

impl Record {
    /// Past its dedupe window: counts as absent, whether or not TTL has collected it yet.
    pub fn expired(&self, now_ms: i64) -> bool {
        self.expires_at * 1000 < now_ms
    }
}

impl LeaseRequest {
    pub fn record(&self) -> Record {
        Record {
            status: Status::InProgress,
            owner: self.owner.clone(),
            lease_until_ms: self.lease_until_ms,
            payload_hash: self.payload_hash.clone(),
            expires_at: self.expires_at,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acquire {
    /// We hold the lease: process the event.
    Acquired,
    /// Already processed within the window: acknowledge, no outbound call. `other_bytes` is
    /// the stored payload's sha256 when this copy's bytes differ outside the dedupe key (a
    /// provider's redelivery may re-serialize): logged, never a conflict once completed.
    Duplicate { other_bytes: Option<String> },
    /// Someone holds a live lease until `lease_until_ms`: retry after it ends.
    InProgress { lease_until_ms: i64 },
    /// Same key, different payload: a reused id. Parked, never marked complete.
    Conflict { stored_hash: String },
}

/// The decision. `existing` is what the store holds for the key (None if nothing).
/// Mirrors the DynamoDB condition `attribute_not_exists(pk) OR expires_at < :now_s OR
/// (status = IN_PROGRESS AND lease_until_ms < :now_ms AND payload_hash = :hash)`, plus one case
/// the condition cannot see: a live lease holding the requester's own token is the requester's
/// (the answer to its first write was lost and the SDK sent it again).
pub fn decide(existing: Option<&Record>, req: &LeaseRequest) -> Acquire {
    let Some(rec) = existing else {
        return Acquire::Acquired;
    };
    if rec.expired(req.now_ms) {
        return Acquire::Acquired; // the old window ended; TTL may not have collected it yet
    }
    let same_bytes = rec.payload_hash == req.payload_hash;
    match rec.status {
        Status::Completed => Acquire::Duplicate {
            other_bytes: (!same_bytes).then(|| rec.payload_hash.clone()),
        },
        // A conflict only while the first is unfinished: which payload is right is not ours
        // to pick, so a person looks at it.
        Status::InProgress if !same_bytes => Acquire::Conflict {
            stored_hash: rec.payload_hash.clone(),
        },
        Status::InProgress if rec.lease_until_ms < req.now_ms => Acquire::Acquired,
        Status::InProgress if rec.owner == req.owner => Acquire::Acquired,
        Status::InProgress => Acquire::InProgress {
            lease_until_ms: rec.lease_until_ms,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(status: Status, lease_until_ms: i64, hash: &str, expires_at: i64) -> Record {
        Record {
            status,
            owner: "old".into(),
            lease_until_ms,
            payload_hash: hash.into(),
            expires_at,
        }
    }

    #[test]
    fn by_table() {
        let req = LeaseRequest {
            owner: "me".into(),
            payload_hash: "h1".into(),
            now_ms: 1_000_000,
            lease_until_ms: 1_030_000,
            expires_at: 4_000,
        };
        let live = 2_000; // expires_at in seconds, after now (1_000 s)
        let cases = [
            ("nothing stored", None, Acquire::Acquired),
            (
                "completed, same payload",
                Some(rec(Status::Completed, 0, "h1", live)),
                Acquire::Duplicate { other_bytes: None },
            ),
            (
                "completed, other bytes: a duplicate whose hashes are logged",
                Some(rec(Status::Completed, 0, "h2", live)),
                Acquire::Duplicate {
                    other_bytes: Some("h2".into()),
                },
            ),
            (
                "live lease",
                Some(rec(Status::InProgress, 1_000_001, "h1", live)),
                Acquire::InProgress {
                    lease_until_ms: 1_000_001,
                },
            ),
            (
                "live lease of our own (a lost answer, written again)",
                Some(Record {
                    owner: "me".into(),
                    ..rec(Status::InProgress, 1_030_000, "h1", live)
                }),
                Acquire::Acquired,
            ),
            (
                "our own token but another payload: still a conflict",
                Some(Record {
                    owner: "me".into(),
                    ..rec(Status::InProgress, 1_030_000, "h2", live)
                }),
                Acquire::Conflict {
                    stored_hash: "h2".into(),
                },
            ),
            (
                "expired lease: take over",
                Some(rec(Status::InProgress, 999_999, "h1", live)),
                Acquire::Acquired,
            ),
            (
                "expired lease, other payload",
                Some(rec(Status::InProgress, 999_999, "h2", live)),
                Acquire::Conflict {
                    stored_hash: "h2".into(),
                },
            ),
            (
                "window over (TTL not yet run)",
                Some(rec(Status::Completed, 0, "h2", 999)),
                Acquire::Acquired,
            ),
            (
                "window over, in progress",
                Some(rec(Status::InProgress, 5_000_000, "h1", 999)),
                Acquire::Acquired,
            ),
        ];
        for (name, existing, want) in cases {
            assert_eq!(decide(existing.as_ref(), &req), want, "{name}");
        }
    }

    #[test]
    fn status_round_trips() {
        for s in [Status::InProgress, Status::Completed] {
            assert_eq!(Status::parse(s.as_str()), Some(s));
        }
        assert_eq!(Status::parse("EXPIRED"), None);
    }
}
