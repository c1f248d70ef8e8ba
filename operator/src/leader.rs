//! Leader election with a `coordination.k8s.io/v1` Lease, so that several operator replicas
//! can run and only one reconciles. The leader renews the Lease every `renew_every`; another
//! replica takes over once the Lease has not been renewed for `lease_duration`. A leader that
//! fails to renew before its Lease would expire steps down.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::PostParams;
use kube::{Api, Client};

use crate::error::Error;

/// Settings of the election.
#[derive(Clone, Debug)]
pub struct Election {
    /// Lease name.
    pub name: String,
    /// Lease namespace.
    pub namespace: String,
    /// This replica's identity (pod name or host name plus a random suffix).
    pub identity: String,
    /// How long a Lease stays valid without renewal.
    pub lease_duration: Duration,
    /// How often the leader renews.
    pub renew_every: Duration,
}

/// Whether `identity` may take or keep the Lease at `now` (pure).
pub fn may_hold(lease: &Lease, identity: &str, now: Timestamp) -> bool {
    let Some(spec) = &lease.spec else {
        return true;
    };
    let holder = spec.holder_identity.as_deref().unwrap_or_default();
    if holder.is_empty() || holder == identity {
        return true;
    }
    let duration = SignedDuration::from_secs(i64::from(spec.lease_duration_seconds.unwrap_or(15)));
    match spec.renew_time.as_ref().or(spec.acquire_time.as_ref()) {
        Some(renewed) => renewed
            .0
            .checked_add(duration)
            .map_or(true, |end| end < now),
        None => true,
    }
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

impl Election {
    fn api(&self, client: &Client) -> Api<Lease> {
        Api::namespaced(client.clone(), &self.namespace)
    }

    /// Tries once to take or renew the Lease; `Ok(true)` when this replica holds it.
    pub async fn try_hold(&self, client: &Client) -> Result<bool, Error> {
        let api = self.api(client);
        let now = Timestamp::now();
        let action = format!("leader election on Lease {}/{}", self.namespace, self.name);
        match api
            .get_opt(&self.name)
            .await
            .map_err(Error::kube(action.clone()))?
        {
            None => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.name.clone()),
                        namespace: Some(self.namespace.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(held_by(None, &self.identity, self.lease_duration, now)),
                };
                match api.create(&PostParams::default(), &lease).await {
                    Ok(_) => Ok(true),
                    Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                    Err(e) => Err(Error::kube(action)(e)),
                }
            }
            Some(lease) if may_hold(&lease, &self.identity, now) => {
                let mut updated = lease.clone();
                updated.spec = Some(held_by(
                    lease.spec.as_ref(),
                    &self.identity,
                    self.lease_duration,
                    now,
                ));
                // The resourceVersion in `updated` makes this a compare-and-swap.
                match api
                    .replace(&self.name, &PostParams::default(), &updated)
                    .await
                {
                    Ok(_) => Ok(true),
                    Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                    Err(e) => Err(Error::kube(action)(e)),
                }
            }
            Some(_) => Ok(false),
        }
    }

    /// Waits until this replica holds the Lease.
    pub async fn acquire(&self, client: &Client) {
        loop {
            match self.try_hold(client).await {
                Ok(true) => {
                    tracing::info!(lease = %self.name, identity = %self.identity, "became the leader");
                    return;
                }
                Ok(false) => tracing::debug!(lease = %self.name, "another replica leads"),
                Err(e) => tracing::warn!(error = %e, "leader election failed; retrying"),
            }
            tokio::time::sleep(self.renew_every).await;
        }
    }

    /// Renews the Lease until a renewal fails for longer than the Lease lasts; returns then
    /// (the caller must stop reconciling).
    pub async fn keep(&self, client: &Client) {
        let mut last_renewal = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(self.renew_every).await;
            match self.try_hold(client).await {
                Ok(true) => last_renewal = tokio::time::Instant::now(),
                Ok(false) => {
                    tracing::error!(lease = %self.name, "another replica took the Lease; stepping down");
                    return;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "renewing the Lease failed");
                    if last_renewal.elapsed() + self.renew_every >= self.lease_duration {
                        tracing::error!(lease = %self.name, "could not renew the Lease in time; stepping down");
                        return;
                    }
                }
            }
        }
    }

    /// Gives the Lease up (on shutdown), so another replica takes over at once.
    pub async fn release(&self, client: &Client) {
        let api = self.api(client);
        let Ok(Some(mut lease)) = api.get_opt(&self.name).await else {
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
        if let Err(e) = api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            tracing::warn!(error = %e, "could not release the Lease");
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
    fn a_fresh_lease_of_another_holder_is_respected() {
        let now: Timestamp = "2026-11-22T10:00:10Z".parse().unwrap();
        let l = lease("metadata: {name: l}\nspec: {holderIdentity: b, leaseDurationSeconds: 15, renewTime: '2026-11-22T10:00:00.000000Z'}");
        assert!(!may_hold(&l, "a", now));
        assert!(may_hold(&l, "b", now));
        let later: Timestamp = "2026-11-22T10:00:16Z".parse().unwrap();
        assert!(may_hold(&l, "a", later));
        assert!(may_hold(&lease("metadata: {name: l}\nspec: {}"), "a", now));
        assert!(may_hold(&lease("metadata: {name: l}"), "a", now));
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
