//! Fault injection: rules that make chosen endpoints fail the way real networks and servers do.

use std::time::Duration;

use rand::{Rng, rngs::StdRng};
use serde::{Deserialize, Serialize};

use crate::router::Endpoint;

/// One fault rule. Rules are checked in order for every API call (never for `/admin`); a rule applies to a
/// call when its endpoint matches, it is not spent and its probability roll succeeds. Every applicable
/// `Latency` adds its delay; the first applicable other fault decides the answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FaultRule {
    /// An endpoint name (`"GET Credentials"`, see CONTRACT.md) or `"*"` for every API endpoint.
    pub endpoint: String,
    pub fault: Fault,
    /// Chance in 0..=1 that a matching call is affected, drawn from a generator seeded by the seed's
    /// `faultSeed`.
    #[serde(default = "always")]
    pub probability: f64,
    /// Apply to at most this many calls, then the rule is spent (`Some(0)`). `None`: unlimited.
    #[serde(default)]
    pub remaining: Option<u32>,
}

fn always() -> f64 {
    1.0
}

impl FaultRule {
    /// A rule that always applies to `endpoint`.
    pub fn new(endpoint: impl Into<String>, fault: Fault) -> Self {
        FaultRule { endpoint: endpoint.into(), fault, probability: 1.0, remaining: None }
    }

    /// Limits the rule to `count` applications.
    pub fn times(mut self, count: u32) -> Self {
        self.remaining = Some(count);
        self
    }

    pub fn with_probability(mut self, probability: f64) -> Self {
        self.probability = probability;
        self
    }

    fn matches(&self, endpoint: Endpoint) -> bool {
        let name = self.endpoint.trim();
        name == "*" || Endpoint::from_name(name) == Some(endpoint)
    }

    /// Rolls the dice and, when the rule applies, uses up one of its remaining applications.
    fn fire(&mut self, endpoint: Endpoint, rng: &mut StdRng) -> bool {
        if self.remaining == Some(0) || !self.matches(endpoint) {
            return false;
        }
        if self.probability < 1.0 && rng.random::<f64>() >= self.probability {
            return false;
        }
        if let Some(left) = self.remaining.as_mut() {
            *left -= 1;
        }
        true
    }
}

/// What a fault does to a call. Serialized internally tagged: `{"kind": "tooManyRequests", "retryAfterSecs": 5}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum Fault {
    /// Answer this status with this raw body (sent as `application/json`, not checked).
    Status {
        status: u16,
        #[serde(default)]
        body: Option<String>,
    },
    /// 429 with `Retry-After: <seconds>`.
    TooManyRequests { retry_after_secs: u64 },
    /// Wait, then answer normally (or with another fault). Delays of several rules add up.
    Latency { ms: u64 },
    /// Close the connection without any HTTP response (on HTTP/2 this ends every stream of the connection).
    Drop,
    /// 200 with a body that is not valid JSON.
    Malformed,
    /// 200 with a body of exactly this many bytes (a JSON string when `bytes >= 2`).
    Oversized { bytes: usize },
}

impl Fault {
    fn is_latency(&self) -> bool {
        matches!(self, Fault::Latency { .. })
    }
}

/// The outcome of the fault rules for one call.
#[derive(Debug, Default)]
pub(crate) struct Decision {
    pub delay: Duration,
    /// A fault that replaces the normal answer.
    pub fault: Option<Fault>,
}

/// Applies `rules` to one call of `endpoint`, consuming remaining counts of the rules that fire. Once a
/// replacing fault is chosen, later replacing rules are not rolled (they keep their counts) but later latency
/// rules still are.
pub(crate) fn decide(rules: &mut [FaultRule], endpoint: Endpoint, rng: &mut StdRng) -> Decision {
    let mut decision = Decision::default();
    for rule in rules.iter_mut() {
        let is_latency = rule.fault.is_latency();
        if !is_latency && decision.fault.is_some() {
            continue;
        }
        if !rule.fire(endpoint, rng) {
            continue;
        }
        match &rule.fault {
            Fault::Latency { ms } => decision.delay += Duration::from_millis(*ms),
            other => decision.fault = Some(other.clone()),
        }
    }
    decision
}

/// A body of exactly `bytes` bytes: a JSON string of `x` when there is room for the quotes.
pub(crate) fn oversized_body(bytes: usize) -> Vec<u8> {
    if bytes < 2 {
        return vec![b'x'; bytes];
    }
    let mut body = vec![b'x'; bytes];
    body[0] = b'"';
    body[bytes - 1] = b'"';
    body
}

/// Looks like the start of a real answer, then stops: a parser must fail on it.
pub(crate) const MALFORMED_BODY: &[u8] = b"{\"UserId\": 1, \"Password\": \"tru";

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn remaining_counts_down_and_latency_combines() {
        let mut rules = vec![
            FaultRule::new("*", Fault::Latency { ms: 5 }),
            FaultRule::new("GET Credentials", Fault::Drop).times(1),
            FaultRule::new("get credentials", Fault::Malformed),
            FaultRule::new("*", Fault::Latency { ms: 7 }),
        ];
        let mut rng = StdRng::seed_from_u64(0);
        let first = decide(&mut rules, Endpoint::Credentials, &mut rng);
        assert_eq!(first.delay, Duration::from_millis(12));
        assert_eq!(first.fault, Some(Fault::Drop));
        let second = decide(&mut rules, Endpoint::Credentials, &mut rng);
        assert_eq!(second.fault, Some(Fault::Malformed));
        assert_eq!(rules[1].remaining, Some(0));
        let other = decide(&mut rules, Endpoint::ManagedAccounts, &mut rng);
        assert_eq!(other.fault, None);
        assert_eq!(other.delay, Duration::from_millis(12));
    }

    #[test]
    fn probability_is_reproducible() {
        let run = || {
            let mut rules = vec![FaultRule::new("*", Fault::Drop).with_probability(0.5)];
            let mut rng = StdRng::seed_from_u64(7);
            (0..100).map(|_| decide(&mut rules, Endpoint::Secrets, &mut rng).fault.is_some()).collect::<Vec<_>>()
        };
        let a = run();
        assert_eq!(a, run());
        let hits = a.iter().filter(|hit| **hit).count();
        assert!((25..75).contains(&hits), "{hits}");
    }

    #[test]
    fn serde_shape_is_internally_tagged_camel_case() {
        let rule: FaultRule = serde_json::from_str(
            r#"{"endpoint":"POST Requests","fault":{"kind":"tooManyRequests","retryAfterSecs":3},"remaining":2}"#,
        )
        .unwrap();
        assert_eq!(rule.fault, Fault::TooManyRequests { retry_after_secs: 3 });
        assert_eq!(rule.probability, 1.0);
        let json = serde_json::to_value(FaultRule::new("*", Fault::Oversized { bytes: 10 })).unwrap();
        assert_eq!(json["fault"]["kind"], "oversized");
        assert_eq!(json["fault"]["bytes"], 10);
    }

    #[test]
    fn oversized_body_has_exact_length() {
        assert_eq!(oversized_body(0).len(), 0);
        assert_eq!(oversized_body(1).len(), 1);
        let body = oversized_body(100);
        assert_eq!(body.len(), 100);
        assert!(serde_json::from_slice::<String>(&body).is_ok());
    }
}
