//! Loopback addresses for pods: `<prefix>.N`, N = 2..=254, reused once a pod is gone.

use std::collections::BTreeMap;

/// First host number handed out (`.1` is left to the host).
const FIRST: u8 = 2;
/// Last host number handed out.
const LAST: u8 = 254;

/// Allocates one loopback address per pod uid.
#[derive(Debug)]
pub struct IpPool {
    prefix: String,
    by_host: BTreeMap<u8, String>,
}

/// All addresses of the pool are in use.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("all pod addresses {prefix}.{FIRST}-{prefix}.{LAST} are in use")]
pub struct PoolExhausted {
    /// The pool's prefix.
    pub prefix: String,
}

impl IpPool {
    /// A pool of `<prefix>.2` … `<prefix>.254` (prefix like `127.0.1`).
    pub fn new(prefix: &str) -> Self {
        IpPool {
            prefix: prefix.trim_end_matches('.').to_string(),
            by_host: BTreeMap::new(),
        }
    }

    /// The address of pod `uid`, allocating one if needed. `preferred` (the address the pod
    /// already reports, e.g. after a kubelet restart) is kept when it is in the pool and free.
    pub fn allocate(
        &mut self,
        uid: &str,
        preferred: Option<&str>,
    ) -> Result<String, PoolExhausted> {
        if let Some((host, _)) = self.by_host.iter().find(|(_, owner)| *owner == uid) {
            return Ok(self.address(*host));
        }
        let wanted = preferred
            .and_then(|ip| ip.strip_prefix(&format!("{}.", self.prefix)))
            .and_then(|host| host.parse::<u8>().ok())
            .filter(|host| (FIRST..=LAST).contains(host) && !self.by_host.contains_key(host));
        let host = match wanted {
            Some(host) => host,
            None => (FIRST..=LAST)
                .find(|host| !self.by_host.contains_key(host))
                .ok_or_else(|| PoolExhausted {
                    prefix: self.prefix.clone(),
                })?,
        };
        self.by_host.insert(host, uid.to_string());
        Ok(self.address(host))
    }

    /// Frees the address of pod `uid`.
    pub fn release(&mut self, uid: &str) {
        self.by_host.retain(|_, owner| owner != uid);
    }

    fn address(&self, host: u8) -> String {
        format!("{}.{host}", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocates_reuses_and_prefers() {
        let mut pool = IpPool::new("127.0.1");
        assert_eq!(pool.allocate("a", None).as_deref(), Ok("127.0.1.2"));
        assert_eq!(pool.allocate("b", None).as_deref(), Ok("127.0.1.3"));
        assert_eq!(pool.allocate("a", None).as_deref(), Ok("127.0.1.2"));
        pool.release("a");
        assert_eq!(
            pool.allocate("c", Some("127.0.1.9")).as_deref(),
            Ok("127.0.1.9")
        );
        // Taken or foreign preferred addresses fall back to the first free one.
        assert_eq!(
            pool.allocate("d", Some("127.0.1.9")).as_deref(),
            Ok("127.0.1.2")
        );
        assert_eq!(
            pool.allocate("e", Some("10.0.0.1")).as_deref(),
            Ok("127.0.1.4")
        );
    }

    #[test]
    fn exhaustion_is_an_error() {
        let mut pool = IpPool::new("127.0.1.");
        for i in 0..253 {
            assert!(pool.allocate(&format!("pod-{i}"), None).is_ok());
        }
        assert_eq!(
            pool.allocate("one-too-many", None)
                .map_err(|e| e.to_string()),
            Err("all pod addresses 127.0.1.2-127.0.1.254 are in use".to_string())
        );
    }
}
