//! Leader election with a `coordination.k8s.io/v1` Lease, so that several operator replicas
//! can run and only one reconciles. The leader renews the Lease every `renew_every`; another
//! replica takes over once it has seen the Lease unchanged for `lease_duration`, timed on its
//! own monotonic clock: the holder's `renewTime` is written by the holder's clock, which this
//! replica's clock need not agree with, so it is never compared with this replica's time (as
//! client-go's election does). Every Lease call is bounded by `renew_every`, and a leader
//! that has not renewed within `lease_duration - renew_every` of the start of its last
//! successful renewal steps down, before any other replica can have seen the Lease
//! unchanged for `lease_duration`.

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::PostParams;
use kube::{Api, Client};
use tokio::time::Instant;

use crate::error::Error;

/// Settings and state of the election.
#[derive(Debug)]
pub struct Election {
    /// Lease name.
    pub name: String,
    /// Lease namespace.
    pub namespace: String,
    /// This replica's identity (pod name or host name plus a random suffix).
    pub identity: String,
    /// How long a Lease stays valid without renewal.
    pub lease_duration: Duration,
    /// How often the leader renews, and how long one Lease call may take.
    pub renew_every: Duration,
    /// The Lease record last seen (its resourceVersion) and when this replica first saw it.
    observed: Mutex<Option<(String, Instant)>>,
}

/// Whether `identity` may take or keep `lease`, which this replica has seen unchanged for
/// `unchanged_for` on its own clock (pure): a free Lease or its own, or one whose holder has
/// not renewed it for the Lease's whole duration.
pub fn may_hold(lease: &Lease, identity: &str, unchanged_for: Duration) -> bool {
    let Some(spec) = &lease.spec else {
        return true;
    };
    let holder = spec.holder_identity.as_deref().unwrap_or_default();
    if holder.is_empty() || holder == identity {
        return true;
    }
    let seconds = spec.lease_duration_seconds.unwrap_or(15).max(1);
    unchanged_for >= Duration::from_secs(u64::try_from(seconds).unwrap_or(15))
}

/// The Lease spec that makes `identity` the holder (pure).
pub fn held_by(
    previous: Option<&LeaseSpec>,
    identity: &str,
    duration: Duration,
    now: Timestamp,
) -> LeaseSpec {
    let same_holder = previous
        .and_then(|p| p.holder_identity.as_deref())
        .is_some_and(|h| h == identity);
    let transitions = previous.and_then(|p| p.lease_transitions).unwrap_or(0);
    LeaseSpec {
        holder_identity: Some(identity.to_string()),
        lease_duration_seconds: Some(i32::try_from(duration.as_secs()).unwrap_or(i32::MAX)),
        acquire_time: if same_holder {
            previous.and_then(|p| p.acquire_time.clone())
        } else {
            Some(MicroTime(now))
        },
        renew_time: Some(MicroTime(now)),
        lease_transitions: Some(if same_holder {
            transitions
        } else {
            transitions + 1
        }),
        ..LeaseSpec::default()
    }
}

/// How long a leader may lead without a renewal past the start of its last successful one:
/// the Lease's duration less a margin of a tenth of it (for the other replicas' clocks, which
/// tick at nearly but not exactly the same rate, and for stopping the reconcilers).
pub fn step_down_after(lease_duration: Duration) -> Duration {
    lease_duration - lease_duration / 10
}

/// How long the leader's next wait or renewal may take, `since_renewal` after its last
/// successful renewal started, capped at `cap`; `None` when it must step down now (pure).
/// Whatever the API server does, a leader never leads past [`step_down_after`], before any
/// other replica can have seen the Lease unchanged for its whole duration.
pub fn renewal_budget(
    since_renewal: Duration,
    lease_duration: Duration,
    cap: Duration,
) -> Option<Duration> {
    let left = step_down_after(lease_duration).checked_sub(since_renewal)?;
    (!left.is_zero()).then(|| left.min(cap))
}

impl Election {
    /// The election of `identity` on Lease `namespace/name`, valid for `lease_duration`
    /// and renewed every third of it.
    pub fn new(
        name: String,
        namespace: String,
        identity: String,
        lease_duration: Duration,
    ) -> Self {
        Self {
            name,
            namespace,
            identity,
            lease_duration,
            renew_every: (lease_duration / 3).max(Duration::from_secs(1)),
            observed: Mutex::new(None),
        }
    }

    fn api(&self, client: &Client) -> Api<Lease> {
        Api::namespaced(client.clone(), &self.namespace)
    }

    /// `call`, or an error once it has taken `renew_every`.
    async fn bounded<T>(
        &self,
        action: &str,
        call: impl Future<Output = Result<T, kube::Error>>,
    ) -> Result<Result<T, kube::Error>, Error> {
        tokio::time::timeout(self.renew_every, call)
            .await
            .map_err(|_| Error::KubeTimeout {
                action: action.to_string(),
                after: self.renew_every,
            })
    }

    /// How long this replica has seen `lease` unchanged, on its own clock.
    fn unchanged_for(&self, lease: &Lease) -> Duration {
        let version = lease.metadata.resource_version.clone().unwrap_or_default();
        let mut observed = self.observed.lock().unwrap_or_else(|p| p.into_inner());
        match observed.as_ref() {
            Some((seen, since)) if *seen == version => since.elapsed(),
            _ => {
                *observed = Some((version, Instant::now()));
                Duration::ZERO
            }
        }
    }

    /// Tries once to take or renew the Lease; `Ok(true)` when this replica holds it. Each
    /// API call is bounded by `renew_every`.
    pub async fn try_hold(&self, client: &Client) -> Result<bool, Error> {
        let api = self.api(client);
        let action = format!("leader election on Lease {}/{}", self.namespace, self.name);
        let found = self
            .bounded(&action, api.get_opt(&self.name))
            .await?
            .map_err(Error::kube(action.clone()))?;
        let now = Timestamp::now();
        match found {
            None => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.name.clone()),
                        namespace: Some(self.namespace.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(held_by(None, &self.identity, self.lease_duration, now)),
                };
                match self
                    .bounded(&action, api.create(&PostParams::default(), &lease))
                    .await?
                {
                    Ok(_) => Ok(true),
                    Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                    Err(e) => Err(Error::kube(action)(e)),
                }
            }
            Some(lease) if may_hold(&lease, &self.identity, self.unchanged_for(&lease)) => {
                let mut updated = lease.clone();
                updated.spec = Some(held_by(
                    lease.spec.as_ref(),
                    &self.identity,
                    self.lease_duration,
                    now,
                ));
                // The resourceVersion in `updated` makes this a compare-and-swap.
                match self
                    .bounded(
                        &action,
                        api.replace(&self.name, &PostParams::default(), &updated),
                    )
                    .await?
                {
                    Ok(_) => Ok(true),
                    Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                    Err(e) => Err(Error::kube(action)(e)),
                }
            }
            Some(_) => Ok(false),
        }
    }

    /// Waits until this replica holds the Lease; returns when the call that took it started
    /// (for [`Self::keep`]).
    pub async fn acquire(&self, client: &Client) -> Instant {
        loop {
            let started = Instant::now();
            match self.try_hold(client).await {
                Ok(true) => {
                    tracing::info!(lease = %self.name, identity = %self.identity, "became the leader");
                    return started;
                }
                Ok(false) => tracing::debug!(lease = %self.name, "another replica leads"),
                Err(e) => tracing::warn!(error = %e, "leader election failed; retrying"),
            }
            tokio::time::sleep(self.renew_every).await;
        }
    }

    /// Renews the Lease until another replica holds it or the leader could lead past
    /// [`step_down_after`] without a renewal; returns then (the caller must stop
    /// reconciling). `held_since`: when the call that made this replica the holder started.
    /// A failed renewal is retried sooner, within what is left.
    pub async fn keep(&self, client: &Client, held_since: Instant) {
        let mut last_renewal = held_since;
        let mut pause = self.renew_every;
        while let Some(left) = renewal_budget(last_renewal.elapsed(), self.lease_duration, pause) {
            tokio::time::sleep(left).await;
            let started = Instant::now();
            let Some(budget) = renewal_budget(
                started - last_renewal,
                self.lease_duration,
                self.renew_every,
            ) else {
                break;
            };
            match tokio::time::timeout(budget, self.try_hold(client)).await {
                Ok(Ok(true)) => {
                    last_renewal = started;
                    pause = self.renew_every;
                }
                Ok(Ok(false)) => {
                    tracing::error!(lease = %self.name, "another replica took the Lease; stepping down");
                    return;
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "renewing the Lease failed");
                    pause = self.renew_every / 4;
                }
                Err(_) => {
                    tracing::warn!(
                        after_ms = budget.as_millis() as u64,
                        "renewing the Lease did not answer in time"
                    );
                    pause = self.renew_every / 4;
                }
            }
        }
        tracing::error!(lease = %self.name, "could not renew the Lease in time; stepping down");
    }

    /// Gives the Lease up (on shutdown), so another replica takes over at once.
    pub async fn release(&self, client: &Client) {
        let api = self.api(client);
        let action = format!("releasing Lease {}/{}", self.namespace, self.name);
        let Ok(Ok(Some(mut lease))) = self.bounded(&action, api.get_opt(&self.name)).await else {
            return;
        };
        let holds = lease
            .spec
            .as_ref()
            .and_then(|s| s.holder_identity.as_deref())
            .is_some_and(|h| h == self.identity);
        if !holds {
            return;
        }
        if let Some(spec) = lease.spec.as_mut() {
            spec.holder_identity = None;
            spec.renew_time = None;
        }
        match self
            .bounded(
                &action,
                api.replace(&self.name, &PostParams::default(), &lease),
            )
            .await
        {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "could not release the Lease"),
            Err(e) => tracing::warn!(error = %e, "could not release the Lease"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(yaml: &str) -> Lease {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn another_holder_is_respected_until_its_lease_was_seen_unchanged_for_its_duration() {
        let l = lease("metadata: {name: l, resourceVersion: '7'}\nspec: {holderIdentity: b, leaseDurationSeconds: 15, renewTime: '2026-11-22T10:00:00.000000Z'}");
        assert!(!may_hold(&l, "a", Duration::from_secs(14)));
        assert!(may_hold(&l, "b", Duration::ZERO), "its own Lease");
        assert!(may_hold(&l, "a", Duration::from_secs(15)));
        assert!(may_hold(
            &lease("metadata: {name: l}\nspec: {}"),
            "a",
            Duration::ZERO
        ));
        assert!(may_hold(&lease("metadata: {name: l}"), "a", Duration::ZERO));
    }

    #[test]
    fn a_renew_time_from_a_clock_far_behind_does_not_make_the_lease_free() {
        // The holder's clock is a day behind ours: its renewTime looks ancient here, but we
        // have just seen it change, so the holder is alive.
        let l = lease("metadata: {name: l, resourceVersion: '8'}\nspec: {holderIdentity: b, leaseDurationSeconds: 15, renewTime: '2026-11-21T10:00:00.000000Z'}");
        assert!(!may_hold(&l, "a", Duration::from_secs(1)));
    }

    #[test]
    fn a_leader_steps_down_before_another_replica_may_take_over() {
        let lease = Duration::from_secs(15);
        let renew = Duration::from_secs(5);
        assert_eq!(step_down_after(lease), Duration::from_millis(13_500));
        assert_eq!(
            renewal_budget(Duration::from_secs(5), lease, renew),
            Some(renew)
        );
        assert_eq!(
            renewal_budget(Duration::from_secs(12), lease, renew),
            Some(Duration::from_millis(1_500)),
            "a renewal late in the Lease gets only what is left"
        );
        assert_eq!(
            renewal_budget(Duration::from_millis(13_500), lease, renew),
            None
        );
        assert_eq!(renewal_budget(Duration::from_secs(20), lease, renew), None);
    }

    #[test]
    fn taking_over_counts_a_transition_and_renewing_does_not() {
        let now: Timestamp = "2026-11-22T10:00:10Z".parse().unwrap();
        let old = lease("metadata: {name: l}\nspec: {holderIdentity: b, leaseTransitions: 2, acquireTime: '2026-11-22T09:00:00.000000Z'}");
        let taken = held_by(old.spec.as_ref(), "a", Duration::from_secs(15), now);
        assert_eq!(taken.holder_identity.as_deref(), Some("a"));
        assert_eq!(taken.lease_transitions, Some(3));
        assert_eq!(taken.acquire_time, Some(MicroTime(now)));
        let renewed = held_by(Some(&taken), "a", Duration::from_secs(15), now);
        assert_eq!(renewed.lease_transitions, Some(3));
        assert_eq!(renewed.lease_duration_seconds, Some(15));
    }
}
