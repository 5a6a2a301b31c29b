//! Owner references: the garbage collector (dependents of a deleted owner are deleted, or lose
//! the dangling reference when another owner lives), orphaning (`propagationPolicy: Orphan`),
//! and the deletion of a namespace's contents.

use serde_json::Value;

use super::delete::DeleteOptions;
use super::metadata::{meta_mut, meta_str, owner_uids};
use super::{Store, resource_id};
use crate::resources::ResourceType;

impl Store {
    /// All objects (resource, namespace, name, object) whose ownerReferences name `uid`.
    fn dependents_of(&self, uid: &str) -> Vec<(ResourceType, String, String, Value)> {
        let mut found = Vec::new();
        for rt in &self.resources {
            if let Some(objects) = self.objects.get(&resource_id(rt)) {
                for ((ns, name), object) in objects {
                    if owner_uids(object).iter().any(|u| u == uid) {
                        found.push((rt.clone(), ns.clone(), name.clone(), object.clone()));
                    }
                }
            }
        }
        found
    }

    fn uid_exists(&self, uid: &str) -> bool {
        self.objects
            .values()
            .flat_map(|o| o.values())
            .any(|o| meta_str(o, "uid") == Some(uid))
    }

    fn without_owner(object: &Value, uid: &str) -> Value {
        let mut candidate = object.clone();
        let m = meta_mut(&mut candidate);
        if let Some(Value::Array(refs)) = m.get_mut("ownerReferences") {
            refs.retain(|r| r.get("uid").and_then(Value::as_str) != Some(uid));
            if refs.is_empty() {
                m.remove("ownerReferences");
            }
        }
        m.remove("resourceVersion");
        candidate
    }

    /// The garbage collector, run when an owner is gone: a dependent with another live owner
    /// loses the dangling reference; one without is deleted (its own finalizers respected).
    pub(super) fn collect_garbage(&mut self, uid: &str) {
        for (rt, ns, name, object) in self.dependents_of(uid) {
            let others_alive = owner_uids(&object)
                .iter()
                .any(|u| u != uid && self.uid_exists(u));
            if others_alive {
                let candidate = Self::without_owner(&object, uid);
                self.commit(&rt, &ns, &name, Some(object), candidate, "update");
            } else {
                let _ = self.delete(&rt, &ns, &name, &DeleteOptions::default());
            }
        }
    }

    pub(super) fn orphan_dependents(&mut self, uid: &str) {
        for (rt, ns, name, object) in self.dependents_of(uid) {
            let candidate = Self::without_owner(&object, uid);
            self.commit(&rt, &ns, &name, Some(object), candidate, "update");
        }
    }

    pub(super) fn delete_namespace_contents(&mut self, namespace: &str) {
        let namespaced: Vec<ResourceType> = self
            .resources
            .iter()
            .filter(|r| r.namespaced())
            .cloned()
            .collect();
        for rt in namespaced {
            let names: Vec<String> = self
                .objects
                .get(&resource_id(&rt))
                .map(|o| {
                    o.keys()
                        .filter(|(ns, _)| ns == namespace)
                        .map(|(_, n)| n.clone())
                        .collect()
                })
                .unwrap_or_default();
            for name in names {
                let _ = self.delete(&rt, namespace, &name, &DeleteOptions::default());
            }
        }
    }
}
