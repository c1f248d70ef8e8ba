//! Service-account tokens for projected volumes, requested through the TokenRequest API
//! (bound to the pod) and refreshed at 80 % of their lifetime, like the kubelet's token
//! manager.

use std::collections::HashMap;
use std::sync::Mutex;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Pod, ServiceAccount, ServiceAccountTokenProjection};
use kube::api::PostParams;
use kube::{Api, Client};

use super::volumes::TokenLookup;

/// Lifetime requested when a projection does not say (the API's default).
pub const DEFAULT_EXPIRATION_SECONDS: i64 = 3600;

/// Identity of a token: pod uid, audience, requested lifetime.
type TokenKey = (String, Option<String>, i64);

#[derive(Clone, Debug)]
struct CachedToken {
    token: String,
    issued: Timestamp,
    expires: Timestamp,
}

/// Requests and caches tokens.
pub struct TokenManager {
    client: Client,
    cache: Mutex<HashMap<TokenKey, CachedToken>>,
}

/// Whether a token issued at `issued` and expiring at `expires` should be replaced at `now`
/// (after 80 % of its lifetime).
pub fn needs_refresh(issued: Timestamp, expires: Timestamp, now: Timestamp) -> bool {
    let life = expires.duration_since(issued);
    let refresh_at = issued
        .checked_add(life.checked_mul(4).unwrap_or(life) / 5)
        .unwrap_or(issued);
    now >= refresh_at
}

impl TokenManager {
    /// A manager that requests tokens with `client`.
    pub fn new(client: Client) -> Self {
        TokenManager {
            client,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Tokens for every service-account-token projection of `pod`'s volumes, requesting or
    /// refreshing them as needed.
    pub async fn tokens_for(&self, pod: &Pod) -> TokenSet {
        let mut set = TokenSet::default();
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let projections = pod
            .spec
            .iter()
            .flat_map(|s| s.volumes.iter().flatten())
            .filter_map(|v| v.projected.as_ref())
            .flat_map(|p| p.sources.iter().flatten())
            .filter_map(|s| s.service_account_token.clone());
        for projection in projections {
            let expiration = projection
                .expiration_seconds
                .unwrap_or(DEFAULT_EXPIRATION_SECONDS);
            let key = (uid.clone(), projection.audience.clone(), expiration);
            let now = Timestamp::now();
            let cached = self.cache.lock().ok().and_then(|c| c.get(&key).cloned());
            let result = match cached {
                Some(t) if !needs_refresh(t.issued, t.expires, now) => Ok(t.token),
                _ => match self.request(pod, &projection, expiration).await {
                    Ok(fresh) => {
                        let token = fresh.token.clone();
                        if let Ok(mut cache) = self.cache.lock() {
                            cache.insert(key.clone(), fresh);
                        }
                        Ok(token)
                    }
                    // A still-valid old token is better than none while the API is away.
                    Err(error) => match self.cache.lock().ok().and_then(|c| c.get(&key).cloned()) {
                        Some(t) if t.expires > now => Ok(t.token),
                        _ => Err(error),
                    },
                },
            };
            set.tokens
                .insert((projection.audience.clone(), expiration), result);
        }
        set
    }

    async fn request(
        &self,
        pod: &Pod,
        projection: &ServiceAccountTokenProjection,
        expiration: i64,
    ) -> Result<CachedToken, String> {
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        let account = pod
            .spec
            .as_ref()
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_else(|| "default".into());
        let request = TokenRequest {
            spec: Some(TokenRequestSpec {
                audiences: projection.audience.clone().map(|a| vec![a]),
                expiration_seconds: Some(expiration),
                bound_object_ref: Some(BoundObjectReference {
                    api_version: Some("v1".into()),
                    kind: Some("Pod".into()),
                    name: pod.metadata.name.clone(),
                    uid: pod.metadata.uid.clone(),
                }),
                ..TokenRequestSpec::default()
            }),
            ..TokenRequest::default()
        };
        let issued = Timestamp::now();
        let response = Api::<ServiceAccount>::namespaced(self.client.clone(), &namespace)
            .create_token_request(&account, &PostParams::default(), &request)
            .await
            .map_err(|e| {
                format!("TokenRequest for serviceaccount {namespace}/{account} failed: {e}")
            })?;
        let status = response.status.unwrap_or_default();
        let expires = status.expiration_timestamp.map(|t| t.0).unwrap_or_else(|| {
            issued
                .checked_add(SignedDuration::from_secs(expiration))
                .unwrap_or(issued)
        });
        let token = status.token.filter(|t| !t.is_empty()).ok_or_else(|| {
            format!("TokenRequest for serviceaccount {namespace}/{account} returned no token")
        })?;
        Ok(CachedToken {
            token,
            issued,
            expires,
        })
    }

    /// Drops the tokens of pod `uid` (the pod is gone).
    pub fn forget(&self, uid: &str) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.retain(|(pod, _, _), _| pod != uid);
        }
    }
}

/// The tokens of one pod, by (audience, lifetime).
#[derive(Debug, Default)]
pub struct TokenSet {
    tokens: HashMap<(Option<String>, i64), Result<String, String>>,
}

impl TokenLookup for TokenSet {
    fn token(&self, projection: &ServiceAccountTokenProjection) -> Result<String, String> {
        let key = (
            projection.audience.clone(),
            projection
                .expiration_seconds
                .unwrap_or(DEFAULT_EXPIRATION_SECONDS),
        );
        self.tokens
            .get(&key)
            .cloned()
            .unwrap_or_else(|| Err("no token was requested".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_at_eighty_percent_of_life() {
        let issued = Timestamp::from_second(1_000_000).unwrap_or(Timestamp::UNIX_EPOCH);
        let at = |s: i64| {
            issued
                .checked_add(SignedDuration::from_secs(s))
                .unwrap_or(issued)
        };
        assert!(!needs_refresh(issued, at(3600), at(2879)));
        assert!(needs_refresh(issued, at(3600), at(2880)));
        assert!(needs_refresh(issued, at(3600), at(4000)));
    }
}
