//! Turns the engine's containers and volumes into units.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Component, Path, PathBuf};

use bollard::models::{
    ContainerInspectResponse, ContainerStateStatusEnum, HealthStatusEnum, Volume,
};

use super::mounts::{HostMount, LocalBacking, MountRules, PathResolver};
use super::names;
use super::{
    BindMount, ComposeProject, Container, ContainerState, Coverage, CoverageEntry, CoverageKind,
    CoverageReason, Health, ProjectFile, Unit, UnitBind, UnitKind, UnitName, UnitVolume, Verdict,
    VolumeMount,
};
use crate::docker::compose::{self, label};
use crate::docker::{DockerError, Engine};

/// Networks every container may be on that do not belong to any unit.
const ENGINE_NETWORKS: &[&str] = &["bridge", "host", "none"];

/// Reads the engine and returns every unit, sorted by name then kind.
pub async fn discover(engine: &Engine, rules: &MountRules) -> Result<Vec<Unit>, DockerError> {
    let (containers, volumes) =
        tokio::try_join!(engine.inspect_all_containers(), engine.volumes())?;
    let rules = rules.clone();
    // Building touches the filesystem (existence checks, compose files): keep it off the
    // async workers.
    tokio::task::spawn_blocking(move || build_units(containers, &volumes, &rules))
        .await
        .map_err(|e| DockerError::Unreachable {
            endpoint: engine.endpoint().clone(),
            reason: format!("discovery task failed: {e}"),
        })
}

/// A container with the labels we group by, before it joins a unit.
struct Member {
    container: Container,
    /// Why its `kopi-docka.*` labels cannot be followed.
    policy_error: Option<String>,
    labels: HashMap<String, String>,
    number: u32,
    /// Why stopping it through the engine would destroy it (`--rm`), when it would.
    removed_on_stop: Option<String>,
}

/// Groups inspected containers into units. Pure apart from reading compose files and checking
/// that paths exist on this host.
pub fn build_units(
    inspected: Vec<ContainerInspectResponse>,
    volumes: &[Volume],
    rules: &MountRules,
) -> Vec<Unit> {
    let resolver = PathResolver::new(host_mounts(&inspected, volumes));
    let volumes: HashMap<&str, &Volume> = volumes.iter().map(|v| (v.name.as_str(), v)).collect();

    let mut stacks: BTreeMap<String, Vec<Member>> = BTreeMap::new();
    let mut standalone: Vec<Member> = Vec::new();
    for raw in inspected {
        let labels = raw
            .config
            .as_ref()
            .and_then(|c| c.labels.clone())
            .unwrap_or_default();
        if compose::is_oneoff(labels.get(label::ONEOFF).map(String::as_str)) {
            // `compose run` containers are transient copies of a service; their volumes are the
            // service's, and starting them again would rerun a one-off job.
            tracing::debug!(name = ?raw.name, "skipping compose one-off container");
            continue;
        }
        let member = member(raw, labels, rules);
        match member.labels.get(label::PROJECT) {
            Some(project) => stacks.entry(project.clone()).or_default().push(member),
            None => standalone.push(member),
        }
    }

    let mut units: Vec<Unit> = stacks
        .into_iter()
        .map(|(project, members)| stack_unit(&project, members, &resolver, &volumes, rules))
        .chain(standalone.into_iter().map(|m| {
            let name = UnitName::new(&m.container.name);
            assemble(name, UnitKind::Standalone, None, vec![m], &volumes, rules)
        }))
        .collect();
    units.sort_by(|a, b| (&a.name, a.kind).cmp(&(&b.name, b.kind)));
    units
}

/// A container's volumes, binds and tmpfs mounts, as the engine lists them.
fn mounts(
    listed: Vec<bollard::models::MountPoint>,
) -> (Vec<VolumeMount>, Vec<BindMount>, Vec<PathBuf>) {
    let mut volumes = Vec::new();
    let mut binds = Vec::new();
    let mut tmpfs: Vec<PathBuf> = Vec::new();
    for mount in listed {
        let destination = PathBuf::from(mount.destination.unwrap_or_default());
        let read_only = mount.rw == Some(false);
        match mount.typ.as_deref() {
            Some("volume") => volumes.push(VolumeMount {
                name: mount.name.unwrap_or_default(),
                destination,
                read_only,
            }),
            Some("bind") => binds.push(BindMount {
                source: PathBuf::from(mount.source.unwrap_or_default()),
                destination,
                read_only,
            }),
            Some("tmpfs") => tmpfs.push(destination),
            other => tracing::debug!(?other, ?destination, "ignoring mount type"),
        }
    }
    (volumes, binds, tmpfs)
}

fn member(
    raw: ContainerInspectResponse,
    labels: HashMap<String, String>,
    rules: &MountRules,
) -> Member {
    let (volumes, binds, mut tmpfs) = mounts(raw.mounts.unwrap_or_default());
    let host_config = raw.host_config.unwrap_or_default();
    let auto_remove = host_config.auto_remove == Some(true);
    let systemd = systemd_service(&labels);
    let removed_on_stop = removed_on_stop(
        raw.name
            .as_deref()
            .unwrap_or_default()
            .trim_start_matches('/'),
        auto_remove,
        systemd.is_some(),
    );
    // `--tmpfs` mounts appear in HostConfig.Tmpfs, not in Mounts.
    for dest in host_config.tmpfs.unwrap_or_default().into_keys() {
        let dest = PathBuf::from(dest);
        if !tmpfs.contains(&dest) {
            tmpfs.push(dest);
        }
    }
    let state = raw.state.unwrap_or_default();
    let mut networks: Vec<String> = raw
        .network_settings
        .and_then(|n| n.networks)
        .map(|n| n.into_keys().collect())
        .unwrap_or_default();
    networks.sort();
    let number = labels
        .get(label::CONTAINER_NUMBER)
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let depends_on = labels
        .get(label::DEPENDS_ON)
        .map(|v| compose::parse_depends_on_label(v))
        .unwrap_or_default();
    let image = raw
        .config
        .as_ref()
        .and_then(|c| c.image.clone())
        .unwrap_or_default();
    let name = raw
        .name
        .unwrap_or_default()
        .trim_start_matches('/')
        .to_owned();
    // `[units.<unit>.services.<service>]`: a stack's service, a standalone container's name.
    let overrides = rules
        .unit(labels.get(label::PROJECT).unwrap_or(&name))
        .and_then(|u| u.services.get(labels.get(label::SERVICE).unwrap_or(&name)));
    let (settings, policy_error) = match super::service::resolve(&labels, &image, overrides) {
        Ok(settings) => (settings, None),
        Err(error) => (super::service::ServiceSettings::default(), Some(error)),
    };
    let container = Container {
        id: raw.id.unwrap_or_default(),
        name,
        service: labels.get(label::SERVICE).cloned(),
        image,
        state: container_state(state.status),
        health: state.health.and_then(|h| h.status).and_then(health),
        restart_policy: host_config
            .restart_policy
            .and_then(|p| p.name)
            .map(|n| n.to_string())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "no".to_owned()),
        depends_on,
        volumes,
        binds,
        tmpfs,
        networks,
        policy: settings.policy,
        exclude: settings.exclude,
        stop_timeout: settings.stop_timeout,
        restore_state: settings.restore_state,
        systemd,
        auto_remove,
    };
    Member {
        container,
        policy_error,
        labels,
        number,
        removed_on_stop,
    }
}

fn container_state(status: Option<ContainerStateStatusEnum>) -> ContainerState {
    match status {
        Some(ContainerStateStatusEnum::CREATED) => ContainerState::Created,
        Some(ContainerStateStatusEnum::RUNNING) => ContainerState::Running,
        Some(ContainerStateStatusEnum::PAUSED) => ContainerState::Paused,
        Some(ContainerStateStatusEnum::RESTARTING) => ContainerState::Restarting,
        Some(ContainerStateStatusEnum::REMOVING) => ContainerState::Removing,
        Some(ContainerStateStatusEnum::EXITED) => ContainerState::Exited,
        Some(ContainerStateStatusEnum::DEAD) => ContainerState::Dead,
        _ => ContainerState::Unknown,
    }
}

/// The typed health of a healthcheck status; `None` when the container has no healthcheck.
pub(crate) fn health(status: HealthStatusEnum) -> Option<Health> {
    match status {
        HealthStatusEnum::STARTING => Some(Health::Starting),
        HealthStatusEnum::HEALTHY => Some(Health::Healthy),
        HealthStatusEnum::UNHEALTHY => Some(Health::Unhealthy),
        HealthStatusEnum::EMPTY | HealthStatusEnum::NONE => None,
    }
}

/// Every mount of every container, as the resolver needs them.
fn host_mounts(inspected: &[ContainerInspectResponse], volumes: &[Volume]) -> Vec<HostMount> {
    // A bind-backed volume's data is in its device, also while nothing mounts it.
    let mountpoints: HashMap<&str, String> = volumes
        .iter()
        .map(|v| {
            let options = v.options.iter().map(|(k, o)| (k.as_str(), o.as_str()));
            let path = match LocalBacking::from_options(options) {
                Ok(LocalBacking::Bind(device)) => device.display().to_string(),
                _ => v.mountpoint.clone(),
            };
            (v.name.as_str(), path)
        })
        .collect();
    let mountpoints = &mountpoints;
    inspected
        .iter()
        .flat_map(|c| {
            let container = c
                .name
                .clone()
                .unwrap_or_default()
                .trim_start_matches('/')
                .to_owned();
            c.mounts.iter().flatten().filter_map(move |m| {
                let source = match m.typ.as_deref() {
                    Some("bind") => m.source.clone()?,
                    Some("volume") => {
                        let name = m.name.as_deref()?;
                        mountpoints.get(name).cloned().or(m.source.clone())?
                    }
                    _ => return None,
                };
                Some(HostMount {
                    destination: PathBuf::from(m.destination.clone()?),
                    source: PathBuf::from(source),
                    container: container.clone(),
                })
            })
        })
        .collect()
}

fn stack_unit(
    project: &str,
    mut members: Vec<Member>,
    resolver: &PathResolver,
    volumes: &HashMap<&str, &Volume>,
    rules: &MountRules,
) -> Unit {
    members.sort_by(|a, b| a.container.name.cmp(&b.container.name));
    if names::engine_name(project).is_err() {
        // Its labels are not read at all: nothing of a refused unit becomes a path.
        return assemble(
            UnitName::new(project),
            UnitKind::Stack,
            None,
            members,
            volumes,
            rules,
        );
    }
    let labelled = project_labels(project, &members);
    let get = |key: &str| labelled.and_then(|m| m.labels.get(key)).map(String::as_str);

    let working_dir_recorded = get(label::WORKING_DIR).map(PathBuf::from);
    let working_dir = working_dir_recorded.as_deref().map(|recorded| {
        resolver
            .resolve(recorded)
            .map_or_else(|| recorded.to_path_buf(), |(path, _)| path)
    });
    // The directory every project file must be in (see `names`).
    let base = checked_working_dir(get(label::WORKING_DIR), working_dir.as_deref());
    if let (Err(why), Some(recorded)) = (&base, get(label::WORKING_DIR))
        && (names::host_path(recorded).is_err() || working_dir.as_deref().is_some_and(Path::exists))
    {
        tracing::warn!(
            project = %project.escape_debug(),
            %why,
            "working directory refused: none of the project's files is read or backed up"
        );
    }

    // v1 records config files relative to the working dir as compose saw it.
    let mut compose_files: Vec<ProjectFile> = get(label::CONFIG_FILES)
        .map(compose::split_list)
        .unwrap_or_default()
        .iter()
        .map(|f| project_file(resolver, f, working_dir_recorded.as_deref()))
        .collect();
    vet(project, &mut compose_files, &base);

    let mut env_files: Vec<ProjectFile> = Vec::new();
    if let Some(dir) = &working_dir {
        let dot_env = dir.join(".env");
        if std::fs::symlink_metadata(&dot_env).is_ok() {
            env_files.push(ProjectFile {
                path: dot_env,
                present: true,
                recorded_as: None,
                resolved_via: None,
                refused: None,
            });
        }
    }
    let services = read_compose_files(&compose_files, &base, resolver, &mut env_files);
    for env in get(label::ENVIRONMENT_FILE)
        .map(compose::split_list)
        .unwrap_or_default()
    {
        env_files.push(project_file(
            resolver,
            &env,
            working_dir_recorded.as_deref(),
        ));
    }
    dedup_by_path(&mut env_files);
    vet(project, &mut env_files, &base);

    for m in &mut members {
        if m.container.depends_on.is_empty()
            && let Some(facts) = m.container.service.as_ref().and_then(|s| services.get(s))
        {
            m.container.depends_on.clone_from(&facts.depends_on);
        }
        m.container.depends_on.sort();
        m.container.depends_on.dedup();
    }

    let facts = ComposeProject {
        working_dir,
        compose_files,
        env_files,
    };
    assemble(
        UnitName::new(project),
        UnitKind::Stack,
        Some(facts),
        members,
        volumes,
        rules,
    )
}

/// The member whose compose labels describe the project. All members normally carry the same
/// ones; a container created by hand with only the project label has none, and one created
/// with crafted labels (anyone who can run a container can set them) must not decide where
/// another stack's recipe is read from: labels with a usable working directory win, then
/// those most members share.
fn project_labels<'a>(project: &str, members: &'a [Member]) -> Option<&'a Member> {
    let key = |m: &Member| {
        (
            m.labels.get(label::WORKING_DIR).cloned(),
            m.labels.get(label::CONFIG_FILES).cloned(),
            m.labels.get(label::ENVIRONMENT_FILE).cloned(),
        )
    };
    let labelled: Vec<&Member> = members
        .iter()
        .filter(|m| m.labels.contains_key(label::CONFIG_FILES))
        .collect();
    let usable = |m: &Member| {
        m.labels
            .get(label::WORKING_DIR)
            .is_some_and(|w| names::host_path(w).is_ok_and(|p| names::working_dir(&p).is_ok()))
    };
    let best = labelled.iter().copied().max_by_key(|m| {
        let shared = labelled.iter().filter(|o| key(o) == key(m)).count();
        // Ties go to the first by name (max_by_key keeps the last maximum).
        (
            usable(m),
            shared,
            std::cmp::Reverse(m.container.name.clone()),
        )
    })?;
    let ignored: Vec<&str> = labelled
        .iter()
        .filter(|m| key(m) != key(best))
        .map(|m| m.container.name.as_str())
        .collect();
    if !ignored.is_empty() {
        tracing::warn!(
            project = %project.escape_debug(),
            used = %best.container.name,
            ?ignored,
            "members of this project disagree on their compose labels; the project's files are \
             read as the used container's labels say"
        );
    }
    Some(best)
}

/// The canonical working directory, or why project files cannot be read from it.
fn checked_working_dir(recorded: Option<&str>, resolved: Option<&Path>) -> Result<PathBuf, String> {
    let (Some(recorded), Some(resolved)) = (recorded, resolved) else {
        return Err("the project records no working directory".into());
    };
    names::host_path(recorded).map_err(|why| format!("working directory {recorded:?}: {why}"))?;
    names::working_dir(resolved)
}

/// Marks the project files that must not be read, and warns about each. With no usable
/// working directory, none is read.
fn vet(project: &str, files: &mut [ProjectFile], base: &Result<PathBuf, String>) {
    for file in files.iter_mut() {
        let verdict = match (&file.refused, base) {
            (Some(why), _) => Err(why.clone()),
            // Missing stays missing.
            (None, _) if !file.present => Ok(()),
            (None, base) => base
                .clone()
                .and_then(|base| names::read_project_file(&file.path, &base).map(drop)),
        };
        if let Err(why) = verdict {
            tracing::warn!(
                project = %project.escape_debug(),
                file = %file.path.display(),
                %why,
                "project file refused: it is neither read nor backed up"
            );
            file.refused = Some(why);
        }
    }
}

/// A project file as compose recorded it (relative ones against `base`), found on this host.
fn project_file(resolver: &PathResolver, recorded: &str, base: Option<&Path>) -> ProjectFile {
    let recorded_path = Path::new(recorded);
    if recorded.contains('\0')
        || recorded_path
            .components()
            .any(|c| c == Component::ParentDir)
    {
        return ProjectFile {
            path: recorded_path.to_path_buf(),
            present: false,
            recorded_as: None,
            resolved_via: None,
            refused: Some(format!(
                "the recorded path {recorded:?} contains `..` or NUL"
            )),
        };
    }
    let as_recorded = match (recorded_path.is_absolute(), base) {
        (true, _) | (false, None) => recorded_path.to_path_buf(),
        (false, Some(base)) => base.join(recorded_path),
    };
    let as_recorded = crate::config::normalize(&as_recorded);
    let (path, present, via) = match resolver.resolve(&as_recorded) {
        Some((path, via)) => (path, true, via),
        None => (as_recorded, false, None),
    };
    ProjectFile {
        recorded_as: (path != Path::new(recorded)).then(|| recorded.to_owned()),
        path,
        present,
        resolved_via: via,
        refused: None,
    }
}

/// Reads `depends_on` per service from the compose files, and adds their `env_file`s to
/// `env_files`. An unreadable compose file is still backed up verbatim; only these facts are
/// then unknown, and a warning says so.
fn read_compose_files(
    compose_files: &[ProjectFile],
    base: &Result<PathBuf, String>,
    resolver: &PathResolver,
    env_files: &mut Vec<ProjectFile>,
) -> BTreeMap<String, compose::ServiceFacts> {
    let mut services: BTreeMap<String, compose::ServiceFacts> = BTreeMap::new();
    let Ok(base) = base else {
        return services;
    };
    for file in compose_files
        .iter()
        .filter(|f| f.present && f.refused.is_none())
    {
        let facts = match names::read_project_file(&file.path, base)
            .and_then(|bytes| String::from_utf8(bytes).map_err(|e| e.to_string()))
            .and_then(|text| compose::parse_services(&text).map_err(|e| e.to_string()))
        {
            Ok(facts) => facts,
            Err(error) => {
                tracing::warn!(
                    file = %file.path.display(), %error,
                    "cannot read compose file; it is still backed up, but depends_on and \
                     env_file from it are unknown"
                );
                continue;
            }
        };
        // Compose resolves env_file relative to the compose file's directory.
        let base = file.path.parent().unwrap_or(Path::new("/"));
        for (service, facts) in facts {
            env_files.extend(
                facts
                    .env_files
                    .iter()
                    .map(|env| project_file(resolver, env, Some(base))),
            );
            services
                .entry(service)
                .or_default()
                .depends_on
                .extend(facts.depends_on);
        }
    }
    services
}

fn dedup_by_path(files: &mut Vec<ProjectFile>) {
    let mut seen = BTreeSet::new();
    files.retain(|f| seen.insert(f.path.clone()));
}

/// Why a unit must not be touched: a refused name, a container that stopping would destroy
/// (`--rm`), or labels that cannot be followed.
fn refused(name: &UnitName, members: &[Member], policy_errors: &[String]) -> Option<String> {
    let containers: Vec<Container> = members.iter().map(|m| m.container.clone()).collect();
    refusal(name, &containers)
        .or_else(|| members.iter().find_map(|m| m.removed_on_stop.clone()))
        .or_else(|| {
            (!policy_errors.is_empty()).then(|| format!("labels: {}", policy_errors.join("; ")))
        })
}

/// Builds the unit-level view (volumes, binds, networks, order, coverage) from its members.
fn assemble(
    name: UnitName,
    kind: UnitKind,
    project: Option<ComposeProject>,
    mut members: Vec<Member>,
    volumes: &HashMap<&str, &Volume>,
    rules: &MountRules,
) -> Unit {
    order_members(&mut members);
    let policy_errors = policy_errors(&members);
    let refused = refused(&name, &members, &policy_errors);
    let containers: Vec<Container> = members.into_iter().map(|m| m.container).collect();
    let start_order = containers.iter().map(|c| c.name.clone()).collect();

    let mut unit_volumes: BTreeMap<&str, UnitVolume> = BTreeMap::new();
    let mut unit_binds: BTreeMap<&Path, UnitBind> = BTreeMap::new();
    let mut networks = BTreeSet::new();
    let mut entries = Vec::new();
    for c in &containers {
        for v in &c.volumes {
            let entry = unit_volumes
                .entry(&v.name)
                .or_insert_with(|| volume_entry(&v.name, volumes, rules));
            entry.used_by.push(c.name.clone());
        }
        for b in &c.binds {
            let entry = unit_binds.entry(&b.source).or_insert_with(|| UnitBind {
                source: b.source.clone(),
                destinations: Vec::new(),
                used_by: Vec::new(),
                read_only: true,
                is_file: b.source.is_file(),
                verdict: rules.classify_bind(&b.source),
                filesystem: None,
                exclude: Vec::new(),
            });
            if !entry.destinations.contains(&b.destination) {
                entry.destinations.push(b.destination.clone());
            }
            if !entry.used_by.contains(&c.name) {
                entry.used_by.push(c.name.clone());
            }
            entry.read_only &= b.read_only;
        }
        for t in &c.tmpfs {
            entries.push(CoverageEntry::new(
                CoverageKind::Tmpfs,
                format!("{}:{}", c.name, t.display()),
                Verdict::skipped(CoverageReason::Tmpfs),
            ));
        }
        networks.extend(
            c.networks
                .iter()
                .filter(|n| !ENGINE_NETWORKS.contains(&n.as_str()))
                .cloned(),
        );
    }
    let config = rules.unit(name.as_str());
    let (volumes, binds) = apply_policies(unit_volumes, unit_binds, &containers, config);
    let (volumes, binds) = probe_filesystems(volumes.into_iter(), binds.into_iter());

    let mut coverage = mount_entries(&volumes, &binds);
    if let Some(project) = &project {
        let file_entry = |kind, f: &ProjectFile| {
            let verdict = match (&f.refused, f.present) {
                (Some(why), _) => {
                    Verdict::not_protected(CoverageReason::Refused { why: why.clone() })
                }
                (None, true) => Verdict::BACKED_UP,
                (None, false) => Verdict::not_protected(CoverageReason::Missing),
            };
            CoverageEntry::new(kind, f.path.display().to_string(), verdict)
        };
        coverage.extend(
            project
                .compose_files
                .iter()
                .map(|f| file_entry(CoverageKind::ComposeFile, f)),
        );
        coverage.extend(
            project
                .env_files
                .iter()
                .map(|f| file_entry(CoverageKind::EnvFile, f)),
        );
    }
    coverage.extend(entries);
    coverage.extend(refused.as_deref().map(|why| refused_entry(&name, why)));

    Unit {
        name,
        kind,
        project,
        containers,
        volumes,
        binds,
        networks: networks.into_iter().collect(),
        start_order,
        coverage: Coverage::from_entries(coverage),
        refused,
        policy_errors,
    }
}

/// The coverage entries of the unit's volumes and binds.
fn mount_entries(volumes: &[UnitVolume], binds: &[UnitBind]) -> Vec<CoverageEntry> {
    volumes
        .iter()
        .map(|v| {
            CoverageEntry::new(CoverageKind::Volume, v.name.clone(), v.verdict.clone())
                .on(v.filesystem.as_ref())
                .excluding(&v.exclude)
        })
        .chain(binds.iter().map(|b| {
            let id = b.source.display().to_string();
            CoverageEntry::new(CoverageKind::Bind, id, b.verdict.clone())
                .on(b.filesystem.as_ref())
                .excluding(&b.exclude)
        }))
        .collect()
}

/// Each member's label errors, with its name.
fn policy_errors(members: &[Member]) -> Vec<String> {
    members
        .iter()
        .filter_map(|m| {
            m.policy_error
                .as_ref()
                .map(|e| format!("{}: {e}", m.container.name))
        })
        .collect()
}

/// The exclude globs of each volume and bind: `[units.<unit>] exclude`, then those of the
/// volume's or bind's own table, then those of every service that mounts it, without repeats.
fn apply_excludes(
    config: Option<&crate::config::UnitConfig>,
    volumes: &mut [UnitVolume],
    binds: &mut [UnitBind],
    containers: &[Container],
) {
    let globs = |own: Option<&crate::config::MountConfig>, used_by: &[String]| {
        let mut all: Vec<String> = Vec::new();
        let unit = config.map(|u| u.exclude.as_slice()).unwrap_or_default();
        let own = own.map(|m| m.exclude.as_slice()).unwrap_or_default();
        let services = containers
            .iter()
            .filter(|c| used_by.contains(&c.name))
            .flat_map(|c| &c.exclude);
        for glob in unit.iter().chain(own).chain(services) {
            if !all.contains(glob) {
                all.push(glob.clone());
            }
        }
        all
    };
    for v in volumes {
        v.exclude = globs(config.and_then(|u| u.volumes.get(&v.name)), &v.used_by);
    }
    for b in binds {
        let own = config.and_then(|u| u.binds.get(b.source.to_string_lossy().as_ref()));
        b.exclude = globs(own, &b.used_by);
    }
}

/// The unit's volumes and binds, with [`apply_policy`] applied to each and their exclude
/// globs ([`apply_excludes`]).
fn apply_policies(
    volumes: BTreeMap<&str, UnitVolume>,
    binds: BTreeMap<&Path, UnitBind>,
    containers: &[Container],
    config: Option<&crate::config::UnitConfig>,
) -> (Vec<UnitVolume>, Vec<UnitBind>) {
    let mut volumes: Vec<UnitVolume> = volumes.into_values().collect();
    let mut binds: Vec<UnitBind> = binds.into_values().collect();
    for v in &mut volumes {
        apply_policy(&mut v.verdict, &v.used_by, containers);
    }
    for b in &mut binds {
        apply_policy(&mut b.verdict, &b.used_by, containers);
    }
    apply_excludes(config, &mut volumes, &mut binds, containers);
    (volumes, binds)
}

/// A volume or bind that only `dump` or `skip` services mount is not copied: a dump holds a
/// database's data (files copied from under a running server are not consistent), and `skip`
/// means not backed up. Used by any `stop` service too, it is backed up as before.
fn apply_policy(verdict: &mut Verdict, used_by: &[String], containers: &[Container]) {
    if !verdict.is_backed_up() {
        return;
    }
    let users: Vec<&Container> = containers
        .iter()
        .filter(|c| used_by.contains(&c.name))
        .collect();
    if users.is_empty() || users.iter().any(|c| c.policy.copies_files()) {
        return;
    }
    *verdict = match users.iter().find_map(|c| c.policy.dump().map(|d| (c, d))) {
        Some((c, dump)) => Verdict::skipped(CoverageReason::CoveredByDump {
            container: c.name.clone(),
            engine: dump.engine,
        }),
        None => Verdict::skipped(CoverageReason::PolicySkip {
            container: users[0].name.clone(),
        }),
    };
}

/// The coverage line of a refused unit (and its warning).
fn refused_entry(name: &UnitName, why: &str) -> CoverageEntry {
    tracing::warn!(unit = %name.as_str().escape_debug(), %why, "unit refused: it is not backed up");
    CoverageEntry::new(
        CoverageKind::Name,
        name.as_str().escape_debug().to_string(),
        Verdict::not_protected(CoverageReason::Refused {
            why: why.to_owned(),
        }),
    )
}

/// Why a unit cannot be backed up safely: its name, a member's name or a member's service
/// would become a path, a tag or a compose argument.
/// The label Podman puts on containers of `podman generate systemd --new` and Quadlet units
/// (and podman-compose 1.6 on every container, run by systemd or not).
const PODMAN_SYSTEMD_UNIT: &str = "PODMAN_SYSTEMD_UNIT";

/// The unit of a container's `PODMAN_SYSTEMD_UNIT` label (run by the engine's manager).
pub(crate) fn systemd_service(
    labels: &HashMap<String, String>,
) -> Option<crate::systemd::control::Service> {
    labels
        .get(PODMAN_SYSTEMD_UNIT)
        .filter(|u| !u.is_empty())
        .map(|unit| crate::systemd::control::Service {
            unit: unit.clone(),
            user: None,
            configured: false,
        })
}

/// A container that runs with `--rm` (auto-remove) is deleted by the engine when it stops: a
/// cold backup would stop it and then have nothing to start. Such containers are what systemd
/// units of `podman generate systemd --new` and Quadlet run (`--rm --replace`); with their
/// `PODMAN_SYSTEMD_UNIT` label they are stopped and started through that unit
/// ([`crate::stop`]). Without it the unit is refused: listed, never touched.
fn removed_on_stop(name: &str, auto_remove: bool, has_unit: bool) -> Option<String> {
    (auto_remove && !has_unit).then(|| {
        format!(
            "container {name} runs with --rm (auto-remove): stopping it through the engine would \
             delete it, and no systemd unit owns it (no PODMAN_SYSTEMD_UNIT label): run it \
             without --rm. See docs/podman.md"
        )
    })
}

fn refusal(name: &UnitName, containers: &[Container]) -> Option<String> {
    let unit = names::engine_name(name.as_str()).map_err(|why| format!("unit name: {why}"));
    let members = containers.iter().map(|c| {
        names::engine_name(&c.name)
            .map_err(|why| format!("container name: {why}"))
            .and_then(|()| match &c.service {
                Some(service) => names::engine_name(service)
                    .map_err(|why| format!("service of {}: {why}", c.name)),
                None => Ok(()),
            })
    });
    std::iter::once(unit).chain(members).find_map(Result::err)
}

/// The mounts, each backed-up one with what the cold pass can do with its filesystem
/// (`fs_snapshot`).
fn probe_filesystems(
    volumes: impl Iterator<Item = UnitVolume>,
    binds: impl Iterator<Item = UnitBind>,
) -> (Vec<UnitVolume>, Vec<UnitBind>) {
    let volumes = volumes
        .map(|mut v| {
            if v.verdict.is_backed_up() {
                v.filesystem = v.data_path().map(crate::fs_snapshot::probe);
            }
            v
        })
        .collect();
    let binds = binds
        .map(|mut b| {
            if b.verdict.is_backed_up() {
                b.filesystem = Some(crate::fs_snapshot::probe(&b.source));
            }
            b
        })
        .collect();
    (volumes, binds)
}

fn volume_entry(name: &str, volumes: &HashMap<&str, &Volume>, rules: &MountRules) -> UnitVolume {
    let mut entry = UnitVolume {
        name: name.to_owned(),
        driver: None,
        mountpoint: None,
        device: None,
        used_by: Vec::new(),
        verdict: Verdict::not_protected(CoverageReason::VolumeNotListed),
        filesystem: None,
        exclude: Vec::new(),
    };
    if let Err(why) = names::engine_name(name) {
        entry.verdict = Verdict::not_protected(CoverageReason::Refused { why });
        return entry;
    }
    let Some(volume) = volumes.get(name) else {
        return entry;
    };
    let mountpoint = PathBuf::from(&volume.mountpoint);
    entry.driver = Some(volume.driver.clone());
    entry.verdict = if volume.driver == "local" {
        let options = volume.options.iter().map(|(k, v)| (k.as_str(), v.as_str()));
        match LocalBacking::from_options(options) {
            // A remote engine, or an engine in another mount namespace: the data is not
            // readable from here.
            Ok(LocalBacking::Plain) if !mountpoint.is_dir() => {
                Verdict::not_protected(CoverageReason::Missing)
            }
            Ok(LocalBacking::Plain) => Verdict::BACKED_UP,
            Ok(LocalBacking::Tmpfs) => Verdict::skipped(CoverageReason::Tmpfs),
            // The engine mounts the device on the mountpoint only while a container uses the
            // volume: after the stop, the data is only in the device directory.
            Ok(LocalBacking::Bind(device)) => {
                let verdict = rules.classify_bind(&device);
                entry.device = Some(device);
                verdict
            }
            Ok(LocalBacking::Mounted { fs_type, device }) => {
                Verdict::not_protected(CoverageReason::DeviceVolume { fs_type, device })
            }
            Err(why) => Verdict::not_protected(CoverageReason::Refused { why }),
        }
    } else {
        Verdict::not_protected(CoverageReason::VolumeDriver {
            driver: volume.driver.clone(),
        })
    };
    entry.mountpoint = Some(mountpoint);
    entry
}

/// Sorts members into start order: services after the services they depend on (Kahn's
/// algorithm, ties by name), replicas by number. A dependency cycle cannot be honoured; the
/// services in it keep name order and a warning says so.
fn order_members(members: &mut [Member]) {
    let services: BTreeSet<&str> = members
        .iter()
        .filter_map(|m| m.container.service.as_deref())
        .collect();
    let mut deps: BTreeMap<&str, BTreeSet<&str>> =
        services.iter().map(|s| (*s, BTreeSet::new())).collect();
    for m in members.iter() {
        if let Some(service) = m.container.service.as_deref() {
            let known = m
                .container
                .depends_on
                .iter()
                .map(String::as_str)
                .filter(|d| services.contains(d) && *d != service);
            deps.entry(service).or_default().extend(known);
        }
    }
    let mut rank: HashMap<String, usize> = HashMap::new();
    while !deps.is_empty() {
        let ready: Vec<&str> = deps
            .iter()
            .filter(|(_, d)| d.is_empty())
            .map(|(s, _)| *s)
            .collect();
        let next = if ready.is_empty() {
            let cycle: Vec<&str> = deps.keys().copied().collect();
            tracing::warn!(services = ?cycle, "depends_on has a cycle; starting these services in name order");
            cycle
        } else {
            ready
        };
        for service in next {
            rank.insert(service.to_owned(), rank.len());
            deps.remove(service);
            for d in deps.values_mut() {
                d.remove(service);
            }
        }
    }
    members.sort_by_key(|m| {
        let r = m
            .container
            .service
            .as_ref()
            .and_then(|s| rank.get(s))
            .copied()
            .unwrap_or(usize::MAX);
        (r, m.number, m.container.name.clone())
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{DiscoveryConfig, RepositoryLocation};
    use bollard::models::{ContainerConfig, ContainerState as RawState, MountPoint};

    fn raw(
        name: &str,
        labels: &[(&str, &str)],
        mounts: Vec<MountPoint>,
    ) -> ContainerInspectResponse {
        ContainerInspectResponse {
            id: Some(format!("id-{name}")),
            name: Some(format!("/{name}")),
            config: Some(ContainerConfig {
                image: Some("img".into()),
                labels: Some(
                    labels
                        .iter()
                        .map(|(k, v)| ((*k).into(), (*v).into()))
                        .collect(),
                ),
                ..Default::default()
            }),
            state: Some(RawState {
                status: Some(ContainerStateStatusEnum::RUNNING),
                ..Default::default()
            }),
            mounts: Some(mounts),
            ..Default::default()
        }
    }

    fn bind(source: &Path, dest: &str) -> MountPoint {
        MountPoint {
            typ: Some("bind".into()),
            source: Some(source.display().to_string()),
            destination: Some(dest.into()),
            rw: Some(true),
            ..Default::default()
        }
    }

    fn rules() -> MountRules {
        MountRules::new(
            &DiscoveryConfig::default(),
            &RepositoryLocation::Local("/nonexistent/repo".into()),
        )
    }

    #[test]
    fn v1_stack_reads_depends_on_and_env_files_from_compose_file() {
        let dir = tempfile::tempdir().unwrap();
        let wd = dir.path();
        std::fs::write(
            wd.join("docker-compose.yml"),
            "services:\n  web:\n    depends_on: [db]\n    env_file: [web.env]\n  db: {}\n",
        )
        .unwrap();
        std::fs::write(wd.join(".env"), "A=1\n").unwrap();
        std::fs::write(wd.join("web.env"), "B=2\n").unwrap();
        let wd_s = wd.display().to_string();
        let common = |svc: &'static str| {
            vec![
                (label::PROJECT, "p"),
                (label::SERVICE, svc),
                (label::WORKING_DIR, wd_s.as_str()),
                (label::CONFIG_FILES, "docker-compose.yml"),
            ]
        };
        let units = build_units(
            vec![
                raw("p_web_1", &common("web"), vec![]),
                raw("p_db_1", &common("db"), vec![]),
            ],
            &[],
            &rules(),
        );
        assert_eq!(units.len(), 1);
        let unit = &units[0];
        assert_eq!(unit.start_order, vec!["p_db_1", "p_web_1"]);
        let project = unit.project.as_ref().unwrap();
        assert_eq!(project.compose_files[0].path, wd.join("docker-compose.yml"));
        assert_eq!(
            project.compose_files[0].recorded_as.as_deref(),
            Some("docker-compose.yml")
        );
        let envs: Vec<_> = project.env_files.iter().map(|f| f.path.clone()).collect();
        assert_eq!(envs, vec![wd.join(".env"), wd.join("web.env")]);
        assert_eq!(unit.containers[1].depends_on, vec!["db"]);
        assert!(!unit.coverage.has_gaps);
    }

    #[test]
    fn standalone_named_like_stack_is_another_unit_and_oneoffs_are_ignored() {
        let units = build_units(
            vec![
                raw(
                    "app",
                    &[(label::PROJECT, "app"), (label::SERVICE, "web")],
                    vec![],
                ),
                raw(
                    "app-run-1",
                    &[(label::PROJECT, "app"), (label::ONEOFF, "True")],
                    vec![],
                ),
                raw("/app2", &[], vec![]),
                raw("app", &[], vec![]),
            ],
            &[],
            &rules(),
        );
        let ids: Vec<_> = units.iter().map(|u| (u.name.as_str(), u.kind)).collect();
        assert_eq!(
            ids,
            vec![
                ("app", UnitKind::Stack),
                ("app", UnitKind::Standalone),
                ("app2", UnitKind::Standalone)
            ]
        );
        assert_eq!(units[0].containers.len(), 1);
    }

    #[test]
    fn binds_are_merged_by_source_and_gaps_reported() {
        let dir = tempfile::tempdir().unwrap();
        let units = build_units(
            vec![raw(
                "c",
                &[],
                vec![
                    bind(dir.path(), "/a"),
                    bind(dir.path(), "/b"),
                    bind(Path::new("/"), "/host"),
                    bind(&dir.path().join("missing"), "/m"),
                    MountPoint {
                        typ: Some("volume".into()),
                        name: Some("ghost".into()),
                        destination: Some("/v".into()),
                        ..Default::default()
                    },
                ],
            )],
            &[],
            &rules(),
        );
        let unit = &units[0];
        assert_eq!(unit.binds.len(), 3);
        let data = unit.binds.iter().find(|b| b.source == dir.path()).unwrap();
        assert_eq!(
            data.destinations,
            vec![PathBuf::from("/a"), PathBuf::from("/b")]
        );
        assert!(data.verdict.is_backed_up());
        assert_eq!(unit.coverage.summary.backed_up, 1);
        assert_eq!(unit.coverage.summary.skipped, 1);
        assert_eq!(unit.coverage.summary.not_protected, 2);
        assert!(unit.coverage.has_gaps);
    }

    #[test]
    fn dependency_cycle_still_orders_everything() {
        let units = build_units(
            vec![
                raw(
                    "p_a_1",
                    &[
                        (label::PROJECT, "p"),
                        (label::SERVICE, "a"),
                        (label::DEPENDS_ON, "b:service_started:false"),
                    ],
                    vec![],
                ),
                raw(
                    "p_b_1",
                    &[
                        (label::PROJECT, "p"),
                        (label::SERVICE, "b"),
                        (label::DEPENDS_ON, "a:service_started:false"),
                    ],
                    vec![],
                ),
                raw(
                    "p_c_1",
                    &[
                        (label::PROJECT, "p"),
                        (label::SERVICE, "c"),
                        (label::DEPENDS_ON, "a:service_started:false"),
                    ],
                    vec![],
                ),
            ],
            &[],
            &rules(),
        );
        assert_eq!(units[0].start_order, vec!["p_a_1", "p_b_1", "p_c_1"]);
    }
}
