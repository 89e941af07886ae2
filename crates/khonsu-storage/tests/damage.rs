//! Damaged files: flipped bytes, 64-byte smears of zeroes or ones, and truncations of every file
//! of a store give a clear error or a state the store really held after some commit — never
//! wrong data, never a panic.

/// Helpers, in a `cfg(test)` module so that they may unwrap like the tests do.
#[cfg(test)]
mod support {
    use arrow_array::{Int64Array, RecordBatch};
    use khonsu_storage::{CommitRecord, Storage, StorageMutation, WriteGroup};
    use std::collections::BTreeMap;
    use std::path::Path;
    use std::sync::Arc;

    pub(crate) type State = BTreeMap<Vec<u8>, (u64, Vec<i64>)>;

    pub(crate) fn batch(v: i64) -> Arc<RecordBatch> {
        Arc::new(
            RecordBatch::try_from_iter([("v", Arc::new(Int64Array::from(vec![v, v + 1])) as _)])
                .unwrap(),
        )
    }

    pub(crate) fn values(b: &RecordBatch) -> Vec<i64> {
        b.column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap()
            .values()
            .to_vec()
    }

    /// Writes 40 commits of puts and deletes; returns the state after each one.
    pub(crate) fn build(store: &dyn Storage) -> Vec<State> {
        let mut states = vec![State::new()];
        let mut state = State::new();
        for ts in 1..=40_u64 {
            let mut mutations = Vec::new();
            for j in 0..8_u64 {
                let k = format!("key/{:03}", (ts * 7 + j * 13) % 120).into_bytes();
                if (ts + j) % 5 == 0 {
                    state.remove(&k);
                    mutations.push(StorageMutation::delete(k));
                } else {
                    let v = i64::try_from(ts * 100 + j).unwrap();
                    state.insert(k.clone(), (ts, vec![v, v + 1]));
                    mutations.push(StorageMutation::put(k, batch(v)).unwrap());
                }
            }
            mutations.sort_by(|a, b| a.key().cmp(b.key()));
            mutations.dedup_by(|a, b| a.key() == b.key());
            let record = CommitRecord {
                commit_ts: ts,
                mutations,
            };
            store.write(WriteGroup::new(&[&record])).unwrap();
            // dedup kept the first of equal keys; rebuild the state from the record itself
            states.push(state.clone());
        }
        states
    }

    pub(crate) fn recovered(store: &dyn Storage) -> Result<State, khonsu_storage::Error> {
        let s = store.recover()?;
        Ok(s.entries
            .iter()
            .map(|e| (e.key.as_bytes().to_vec(), (e.commit_ts, values(&e.batch))))
            .collect())
    }

    /// Every file under `root`, relative to it.
    pub(crate) fn files(root: &Path, dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                files(root, &path, out);
            } else {
                out.push(path.strip_prefix(root).unwrap().to_path_buf());
            }
        }
    }

    /// A store's files held in memory: path, the bytes up to the last non-zero one, full length.
    pub(crate) type Snapshot = Vec<(std::path::PathBuf, Vec<u8>, u64)>;

    pub(crate) fn snapshot(root: &Path) -> Snapshot {
        let mut names = Vec::new();
        files(root, root, &mut names);
        names
            .into_iter()
            .map(|name| {
                let bytes = std::fs::read(root.join(&name)).unwrap();
                let len = bytes.len() as u64;
                let used = bytes.iter().rposition(|b| *b != 0).map_or(0, |p| p + 1);
                (name, bytes[..used].to_vec(), len)
            })
            .collect()
    }

    /// Writes the snapshot under `to`, with `name` replaced by `contents` (its zero tail, such as
    /// a journal's preallocation, restored as a sparse extension).
    pub(crate) fn materialize(
        snapshot: &Snapshot,
        to: &Path,
        name: &Path,
        contents: &[u8],
        keep_len: bool,
    ) {
        for (path, used, len) in snapshot {
            let target = to.join(path);
            std::fs::create_dir_all(target.parent().unwrap()).unwrap();
            let bytes = if path == name {
                contents
            } else {
                used.as_slice()
            };
            std::fs::write(&target, bytes).unwrap();
            if path != name || keep_len {
                let file = std::fs::OpenOptions::new()
                    .write(true)
                    .open(&target)
                    .unwrap();
                file.set_len((*len).max(bytes.len() as u64)).unwrap();
            }
        }
    }

    pub(crate) type Open = dyn Fn(&Path) -> Result<Box<dyn Storage>, khonsu_storage::Error>;

    /// Damages each file of a store built by `build` (but those `skip` names), at `trials` places
    /// per file (flips, then truncations), and checks every outcome.
    pub(crate) fn check_damage(open: &Open, trials: usize, skip: &dyn Fn(&Path) -> bool) {
        let pristine = tempfile::tempdir().unwrap();
        let states = {
            let store = open(pristine.path()).unwrap();
            build(&*store)
        };
        let final_state = states.last().unwrap().clone();
        let files = snapshot(pristine.path());
        for (name, bytes, len) in &files {
            if name.as_os_str() == "LOCK" || skip(name) {
                continue;
            }
            let (mut errors, mut earlier, mut same) = (0, 0, 0);
            // Damage what the file holds, not the zeros a journal is preallocated with.
            let step = (bytes.len() / trials).max(1);
            let mut cases: Vec<(String, Vec<u8>, bool)> = Vec::new();
            for at in (0..bytes.len()).step_by(step) {
                let mut bad = bytes.clone();
                bad[at] ^= 0x5a;
                cases.push((format!("flip at {at}"), bad, true));
            }
            // 64-byte smears of zeroes and ones: damage a page's structure, not one bit of
            // it (a review found panics escaping redb this way that single flips missed).
            for (i, at) in (0..bytes.len()).step_by(step * 2).enumerate() {
                let mut bad = bytes.clone();
                let fill = if i % 2 == 0 { 0x00 } else { 0xff };
                let end = (at + 64).min(bad.len());
                bad[at..end].fill(fill);
                cases.push((format!("smear {fill:#04x} at {at}"), bad, true));
            }
            for cut in (0..bytes.len()).step_by(step * 4) {
                cases.push((format!("truncate to {cut}"), bytes[..cut].to_vec(), false));
            }
            for (what, contents, keep_len) in cases {
                let dir = tempfile::tempdir().unwrap();
                materialize(&files, dir.path(), name, &contents, keep_len);
                match open(dir.path()).and_then(|s| recovered(&*s)) {
                    Err(_) => errors += 1,
                    Ok(state) if state == final_state => same += 1,
                    Ok(state) => {
                        assert!(
                            states.contains(&state),
                            "{} {what}: recovered a state the store never held ({} keys)",
                            name.display(),
                            state.len()
                        );
                        earlier += 1;
                    }
                }
            }
            println!(
                "{} ({len} bytes): {errors} errors, {earlier} earlier states, {same} unchanged",
                name.display(),
            );
        }
    }
}

use khonsu_storage::{RedbStorage, Storage};
use support::check_damage;

#[test]
fn redb_damage_is_an_error_or_an_earlier_state() {
    check_damage(
        &|p| RedbStorage::open(p).map(|s| Box::new(s) as Box<dyn Storage>),
        700,
        &|_| false,
    );
}

#[cfg(feature = "fjall")]
#[test]
fn fjall_damage_is_an_error_or_an_earlier_state() {
    check_damage(
        &|p| khonsu_storage::FjallStorage::open(p).map(|s| Box::new(s) as Box<dyn Storage>),
        150,
        // Every file, lsm-tree's version files (`keyspaces/N/vM`) included: the adapter checks
        // them against their checksums before fjall reads them (a damaged one used to abort
        // the process).
        &|_| false,
    );
}
