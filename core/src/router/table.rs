//! The connection table: slab slots with generation-checked ids, so an event for a
//! connection that is gone (or whose slot was reused) is recognised and ignored.

use std::fmt;

/// Identifies one connection for its whole life. A slot index plus the generation of the
/// slot when the connection was created: ids of closed connections never match again.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId {
    index: u32,
    generation: u32,
}

impl fmt::Debug for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "conn#{}.{}", self.index, self.generation)
    }
}

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

struct Slot<T> {
    generation: u32,
    value: Option<T>,
}

/// A slab of `T` addressed by [`ConnectionId`].
pub(crate) struct Table<T> {
    slots: Vec<Slot<T>>,
    free: Vec<u32>,
    len: usize,
}

impl<T> Table<T> {
    pub(crate) fn new() -> Self {
        Table {
            slots: Vec::new(),
            free: Vec::new(),
            len: 0,
        }
    }

    pub(crate) fn insert(&mut self, value: T) -> ConnectionId {
        self.len += 1; // cannot panic: counts values held in memory
        if let Some(index) = self.free.pop() {
            if let Some(slot) = self.slots.get_mut(index as usize) {
                slot.value = Some(value);
                return ConnectionId {
                    index,
                    generation: slot.generation,
                };
            }
        }
        let index = u32::try_from(self.slots.len()).unwrap_or(u32::MAX);
        self.slots.push(Slot {
            generation: 0,
            value: Some(value),
        });
        ConnectionId {
            index,
            generation: 0,
        }
    }

    pub(crate) fn get(&self, id: ConnectionId) -> Option<&T> {
        self.slots
            .get(id.index as usize)
            .filter(|slot| slot.generation == id.generation)
            .and_then(|slot| slot.value.as_ref())
    }

    pub(crate) fn get_mut(&mut self, id: ConnectionId) -> Option<&mut T> {
        self.slots
            .get_mut(id.index as usize)
            .filter(|slot| slot.generation == id.generation)
            .and_then(|slot| slot.value.as_mut())
    }

    pub(crate) fn remove(&mut self, id: ConnectionId) -> Option<T> {
        let slot = self
            .slots
            .get_mut(id.index as usize)
            .filter(|slot| slot.generation == id.generation)?;
        let value = slot.value.take()?;
        // A slot whose generation would wrap is retired instead of reused.
        if let Some(next) = slot.generation.checked_add(1) {
            slot.generation = next;
            self.free.push(id.index);
        }
        self.len -= 1; // cannot panic: a value was just taken out
        Some(value)
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (ConnectionId, &T)> {
        self.slots.iter().enumerate().filter_map(|(i, slot)| {
            let value = slot.value.as_ref()?;
            Some((
                ConnectionId {
                    index: u32::try_from(i).ok()?,
                    generation: slot.generation,
                },
                value,
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_ids_never_match_a_reused_slot() {
        let mut table = Table::new();
        let a = table.insert("a");
        assert_eq!(table.remove(a), Some("a"));
        let b = table.insert("b");
        assert_eq!(a.index, b.index);
        assert_ne!(a, b);
        assert_eq!(table.get(a), None);
        assert_eq!(table.remove(a), None);
        assert_eq!(table.get(b), Some(&"b"));
        assert_eq!(table.len(), 1);
        assert_eq!(table.iter().count(), 1);
    }
}
