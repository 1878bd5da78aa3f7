//! The catalogs being served, by name, each with its current version and at most one
//! previous version kept answerable for a grace period after a swap.
//!
//! Versions are immutable and shared (`Arc`): a query admitted on a version finishes on it
//! even if the version is swapped out meanwhile. At most two versions of a catalog are held:
//! once a new version's input is checked, and right before it is built, a version still in
//! its grace period is dropped (its in-flight queries finish; new queries for it get
//! `version_gone`), so memory peaks at the current version plus the one being built, and a
//! bad input changes nothing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use super::version::VersionEntry;

struct Slot {
    current: Arc<VersionEntry>,
    previous: Option<(Arc<VersionEntry>, Instant)>,
}

/// Why a version cannot be served.
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup {
    /// No catalog of that name.
    UnknownCatalog,
    /// The catalog is configured but its first version is not built yet.
    Loading,
    /// The catalog exists but that version is gone (or never existed): refetch.
    VersionGone { current: String },
}

/// The catalogs being served.
pub struct Registry {
    slots: RwLock<HashMap<String, Slot>>,
    building: Mutex<std::collections::HashSet<String>>,
    /// Catalogs configured at start-up whose first version is not installed yet.
    loading: Mutex<std::collections::HashSet<String>>,
    grace: Duration,
}

impl Registry {
    /// An empty registry with the given grace period for replaced versions.
    pub fn new(grace: Duration) -> Self {
        Registry {
            slots: RwLock::new(HashMap::new()),
            building: Mutex::new(Default::default()),
            loading: Mutex::new(Default::default()),
            grace,
        }
    }

    /// The current version of a catalog.
    pub fn current(&self, name: &str) -> Option<Arc<VersionEntry>> {
        self.read().get(name).map(|s| s.current.clone())
    }

    /// A given version of a catalog, if it is current or still in its grace period.
    pub fn version(&self, name: &str, version: &str) -> Result<Arc<VersionEntry>, Lookup> {
        let slots = self.read();
        let slot = slots.get(name).ok_or_else(|| self.missing(name))?;
        if slot.current.version().to_hex() == version {
            return Ok(slot.current.clone());
        }
        if let Some((prev, until)) = &slot.previous {
            if prev.version().to_hex() == version && Instant::now() < *until {
                return Ok(prev.clone());
            }
        }
        Err(Lookup::VersionGone {
            current: slot.current.version().to_hex(),
        })
    }

    /// A catalog's current version and, if still in grace, its previous one; or why there
    /// is none (read under one lock, so a catalog being installed is seen either way).
    pub fn catalog(
        &self,
        name: &str,
    ) -> Result<(Arc<VersionEntry>, Option<Arc<VersionEntry>>), Lookup> {
        let slots = self.read();
        let slot = slots.get(name).ok_or_else(|| self.missing(name))?;
        let previous = slot
            .previous
            .as_ref()
            .filter(|(_, until)| Instant::now() < *until)
            .map(|(p, _)| p.clone());
        Ok((slot.current.clone(), previous))
    }

    /// Why there is no catalog `name`: unknown, or still loading.
    pub fn missing(&self, name: &str) -> Lookup {
        if self
            .loading
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(name)
        {
            Lookup::Loading
        } else {
            Lookup::UnknownCatalog
        }
    }

    /// Catalogs that are configured and will be served once built: until then, requests for
    /// them are answered `loading` rather than `unknown_catalog`.
    pub fn expect(&self, names: impl IntoIterator<Item = String>) {
        self.loading
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(names);
    }

    /// Every catalog with its current version and, if any, its previous one.
    pub fn list(&self) -> Vec<(String, Arc<VersionEntry>, Option<Arc<VersionEntry>>)> {
        let now = Instant::now();
        let mut out: Vec<_> = self
            .read()
            .iter()
            .map(|(name, s)| {
                let prev = s
                    .previous
                    .as_ref()
                    .filter(|(_, until)| now < *until)
                    .map(|(p, _)| p.clone());
                (name.clone(), s.current.clone(), prev)
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Claim the right to build a new version of `name`: refused while another build of it
    /// runs. Nothing served changes until [`BuildGuard::make_room`].
    pub fn begin_build(&self, name: &str) -> Option<BuildGuard<'_>> {
        let mut building = self.building.lock().unwrap_or_else(|e| e.into_inner());
        if !building.insert(name.to_string()) {
            return None;
        }
        Some(BuildGuard {
            registry: self,
            name: name.to_string(),
        })
    }

    /// Make `entry` the current version of `name`; the version it replaces stays answerable
    /// for the grace period. Installing the version that is already current changes nothing.
    pub fn install(&self, name: &str, entry: Arc<VersionEntry>) {
        let mut slots = self.write();
        self.loading
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
        match slots.get_mut(name) {
            Some(slot) if slot.current.version() == entry.version() => {}
            Some(slot) => {
                let old = std::mem::replace(&mut slot.current, entry);
                slot.previous = Some((old, Instant::now() + self.grace));
            }
            None => {
                slots.insert(
                    name.to_string(),
                    Slot {
                        current: entry,
                        previous: None,
                    },
                );
            }
        }
    }

    /// Drop versions whose grace period is over.
    pub fn expire(&self) {
        let now = Instant::now();
        for slot in self.write().values_mut() {
            if slot
                .previous
                .as_ref()
                .is_some_and(|(_, until)| now >= *until)
            {
                slot.previous = None;
            }
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Slot>> {
        self.slots.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Slot>> {
        self.slots.write().unwrap_or_else(|e| e.into_inner())
    }
}

/// Held while a new version is being built; releases the claim when dropped.
pub struct BuildGuard<'a> {
    registry: &'a Registry,
    name: String,
}

impl BuildGuard<'_> {
    /// Drop the version still in its grace period (its in-flight queries finish; later ones
    /// get `version_gone`), so that memory never holds three versions: call it once the new
    /// version's input is checked, right before its build.
    pub fn make_room(&self) {
        if let Some(slot) = self.registry.write().get_mut(&self.name) {
            slot.previous = None;
        }
    }
}

impl Drop for BuildGuard<'_> {
    fn drop(&mut self) {
        self.registry
            .building
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.name);
    }
}
