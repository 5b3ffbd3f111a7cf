//! Every WIT world version the host claims to support links on it: for each
//! package in `wit/` (the current `wit/collector.wit` and every frozen
//! `wit/v*/` directory, found on disk, so a version frozen later is covered
//! without touching this file) and each world it defines (`plugin`,
//! `cost-plugin`, `monitoring-plugin`, `full-plugin`, whatever it has), a
//! component is built here with `wit-component` from a core module that
//! imports every function (and resource destructor) the world declares and
//! exports every function it exports (each traps when called; only
//! `cabi_realloc` works, a bump allocator). The host must admit it (the
//! world's version and its data source roles as the world says),
//! instantiate it (every import provided by its linker), and reach its
//! exports (calling one traps, the guest's own doing).
//!
//! And it must refuse, with its typed errors, what it cannot run: a
//! component importing one function, or one interface, more than a world
//! it knows declares (`LinkError::Link`), and one built for a world line it
//! does not serve (`LinkError::Unsupported`).
//!
//! The same builder gives an export a body of its own: a guest that
//! leaves an `http.start-many` batch pending when its run ends, whose
//! request the host must still count for its metrics.

use cf_host::bindings::{LinkError, SUPPORTED};
use cf_host::error::{ErrorCode, RunError};
use cf_host::runtime::{LoadError, Role};
use cf_host::{Plugin, Runtime, RuntimeConfig};
use cf_tests::block_on;
use std::path::{Path, PathBuf};
use wit_parser::{PackageId, Resolve, WorldId, WorldItem};

/// Builds collector components from WIT: a core module with every import
/// and export of a world, made into a component by `wit-component`.
mod build {
    use std::collections::HashMap;
    use wasm_encoder::{
        CodeSection, ConstExpr, DataSection, EntityType, ExportKind, ExportSection, Function, FunctionSection, GlobalSection, GlobalType,
        ImportSection, Instruction, MemorySection, MemoryType, Module, TypeSection, ValType,
    };
    use wit_component::{ComponentEncoder, StringEncoding};
    use wit_parser::abi::{AbiVariant, WasmType};
    use wit_parser::{LiftLowerAbi, ManglingAndAbi, Resolve, ResourceIntrinsic, TypeDefKind, WasmExport, WasmExportKind, WasmImport, WorldId, WorldItem};

    /// The mangling wit-bindgen's guests use (`module "iface@v"`, field
    /// `"func"`), synchronous ABI.
    const MANGLING: ManglingAndAbi = ManglingAndAbi::Legacy(LiftLowerAbi::Sync);

    /// Where `cabi_realloc` starts handing out memory; below it the
    /// module's own data ([`Guest::data`]).
    pub const HEAP: u32 = 8192;

    /// The imported functions by (module, field), their indices.
    pub type Imports = HashMap<(String, String), u32>;

    /// An export's body, made knowing the imports' indices.
    pub type Body = Box<dyn Fn(&Imports) -> Function>;

    /// What the module does beyond trapping: export bodies by export name
    /// (the rest trap) and data at addresses below [`HEAP`].
    #[derive(Default)]
    pub struct Guest {
        pub bodies: HashMap<String, Body>,
        pub data: Vec<(u32, Vec<u8>)>,
    }

    fn val(t: WasmType) -> ValType {
        match t {
            WasmType::I32 | WasmType::Pointer | WasmType::Length => ValType::I32,
            WasmType::I64 | WasmType::PointerOrI64 => ValType::I64,
            WasmType::F32 => ValType::F32,
            WasmType::F64 => ValType::F64,
        }
    }

    /// A body that traps.
    fn trap() -> Function {
        let mut body = Function::new_with_locals_types([]);
        body.instruction(&Instruction::Unreachable).instruction(&Instruction::End);
        body
    }

    /// `cabi_realloc(old, old_size, align, size)`: a bump allocator from
    /// [`HEAP`] (8-aligned; never frees).
    fn bump() -> Function {
        let mut body = Function::new_with_locals_types([ValType::I32]);
        for i in [
            Instruction::GlobalGet(0),
            Instruction::I32Const(7),
            Instruction::I32Add,
            Instruction::I32Const(-8),
            Instruction::I32And,
            Instruction::LocalTee(4),
            Instruction::LocalGet(3),
            Instruction::I32Add,
            Instruction::GlobalSet(0),
            Instruction::LocalGet(4),
            Instruction::End,
        ] {
            body.instruction(&i);
        }
        body
    }

    /// A core module's sections, filled in order: imports first (their
    /// function indices come first), then defined functions.
    #[derive(Default)]
    struct Core {
        types: TypeSection,
        imports: ImportSection,
        functions: FunctionSection,
        code: CodeSection,
        exports: ExportSection,
        imported: Imports,
        defined: u32,
    }

    impl Core {
        fn ty(&mut self, params: &[WasmType], results: &[WasmType]) -> u32 {
            let index = self.types.len();
            self.types.ty().function(params.iter().copied().map(val), results.iter().copied().map(val));
            index
        }

        fn import(&mut self, (module, field): (String, String), params: &[WasmType], results: &[WasmType]) {
            assert_eq!(self.defined, 0, "imports come before defined functions");
            let ty = self.ty(params, results);
            self.imports.import(&module, &field, EntityType::Function(ty));
            let index = self.imported.len() as u32;
            self.imported.insert((module, field), index);
        }

        fn export(&mut self, name: &str, params: &[WasmType], results: &[WasmType], body: &Function) {
            let ty = self.ty(params, results);
            self.functions.function(ty);
            self.code.function(body);
            self.exports.export(name, ExportKind::Func, self.imported.len() as u32 + self.defined);
            self.defined += 1;
        }
    }

    /// A core module with every import and export of `world` (the exports
    /// trap unless `guest` has a body for them), its memory and
    /// `cabi_realloc`, and the world in its `component-type` section.
    pub fn core_module(resolve: &Resolve, world: WorldId, guest: &Guest) -> Vec<u8> {
        let w = &resolve.worlds[world];
        let mut core = Core::default();
        for (key, item) in &w.imports {
            match item {
                WorldItem::Function(func) => {
                    let sig = resolve.wasm_signature(AbiVariant::GuestImport, func);
                    core.import(resolve.wasm_import_name(MANGLING, WasmImport::Func { interface: None, func }), &sig.params, &sig.results);
                }
                WorldItem::Interface { id, .. } => {
                    let iface = &resolve.interfaces[*id];
                    for func in iface.functions.values() {
                        let sig = resolve.wasm_signature(AbiVariant::GuestImport, func);
                        let name = resolve.wasm_import_name(MANGLING, WasmImport::Func { interface: Some(key), func });
                        core.import(name, &sig.params, &sig.results);
                    }
                    for ty in iface.types.values() {
                        if matches!(resolve.types[*ty].kind, TypeDefKind::Resource) {
                            let intrinsic = WasmImport::ResourceIntrinsic { interface: Some(key), resource: *ty, intrinsic: ResourceIntrinsic::ImportedDrop };
                            core.import(resolve.wasm_import_name(MANGLING, intrinsic), &[WasmType::I32], &[]);
                        }
                    }
                }
                WorldItem::Type(_) => {}
            }
        }
        let mut custom = 0;
        for (key, item) in &w.exports {
            let funcs: Vec<_> = match item {
                WorldItem::Function(func) => vec![(None, func)],
                WorldItem::Interface { id, .. } => {
                    let iface = &resolve.interfaces[*id];
                    assert!(
                        iface.types.values().all(|t| !matches!(resolve.types[*t].kind, TypeDefKind::Resource)),
                        "exported resources: this builder does not make their intrinsics"
                    );
                    iface.functions.values().map(|f| (Some(key), f)).collect()
                }
                WorldItem::Type(_) => vec![],
            };
            for (interface, func) in funcs {
                let sig = resolve.wasm_signature(AbiVariant::GuestExport, func);
                let name = resolve.wasm_export_name(MANGLING, WasmExport::Func { interface, func, kind: WasmExportKind::Normal });
                let body = match guest.bodies.get(&name) {
                    Some(make) => {
                        custom += 1;
                        make(&core.imported)
                    }
                    None => trap(),
                };
                core.export(&name, &sig.params, &sig.results, &body);
            }
        }
        assert_eq!(custom, guest.bodies.len(), "every body is for an export of the world");
        let realloc = resolve.wasm_export_name(MANGLING, WasmExport::Realloc);
        core.export(&realloc, &[WasmType::I32; 4], &[WasmType::I32], &bump());
        let mut memories = MemorySection::new();
        memories.memory(MemoryType { minimum: 2, maximum: None, memory64: false, shared: false, page_size_log2: None });
        core.exports.export(&resolve.wasm_export_name(MANGLING, WasmExport::Memory), ExportKind::Memory, 0);
        let mut globals = GlobalSection::new();
        globals.global(GlobalType { val_type: ValType::I32, mutable: true, shared: false }, &ConstExpr::i32_const(HEAP as i32));
        let mut data = DataSection::new();
        for (at, bytes) in &guest.data {
            assert!(*at as usize + bytes.len() <= HEAP as usize, "data below the heap");
            data.active(0, &ConstExpr::i32_const(*at as i32), bytes.iter().copied());
        }

        let mut module = Module::new();
        module
            .section(&core.types)
            .section(&core.imports)
            .section(&core.functions)
            .section(&memories)
            .section(&globals)
            .section(&core.exports)
            .section(&core.code)
            .section(&data);
        let mut bytes = module.finish();
        wit_component::embed_component_metadata(&mut bytes, resolve, world, StringEncoding::UTF8).expect("component-type section");
        bytes
    }

    /// The component of `world`: [`core_module`] made a component.
    pub fn component(resolve: &Resolve, world: WorldId, guest: &Guest) -> Vec<u8> {
        let module = core_module(resolve, world, guest);
        ComponentEncoder::default()
            .validate(true)
            .module(&module)
            .and_then(|mut e| e.encode())
            .unwrap_or_else(|e| panic!("wit-component: {e:?}"))
    }
}

fn wit_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("wit")
}

/// Every world package the host claims to support: the current
/// `wit/collector.wit`, then each directory under `wit/`.
fn packages() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(wit_dir())
        .expect("wit/")
        .map(|e| e.expect("wit/ entry").path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    std::iter::once(wit_dir().join("collector.wit")).chain(dirs).collect()
}

fn parse(path: &Path) -> (Resolve, PackageId) {
    let mut resolve = Resolve::default();
    let (pkg, _) = resolve.push_path(path).unwrap_or_else(|e| panic!("{}: {e:?}", path.display()));
    (resolve, pkg)
}

/// The package's version as semver.
fn version(resolve: &Resolve, pkg: PackageId) -> semver::Version {
    let v = resolve.packages[pkg].name.version.as_ref().expect("a versioned package");
    semver::Version::parse(&v.to_string()).expect("semver")
}

/// Whether `world` exports the interface named `name`.
fn exports(resolve: &Resolve, world: WorldId, name: &str) -> bool {
    resolve.worlds[world]
        .exports
        .values()
        .any(|item| matches!(item, WorldItem::Interface { id, .. } if resolve.interfaces[*id].name.as_deref() == Some(name)))
}

/// Whether `world` imports `function` of the interface named `iface`.
fn imports_function(resolve: &Resolve, world: WorldId, iface: &str, function: &str) -> bool {
    resolve.worlds[world].imports.values().any(|item| {
        matches!(item, WorldItem::Interface { id, .. }
            if resolve.interfaces[*id].name.as_deref() == Some(iface) && resolve.interfaces[*id].functions.contains_key(function))
    })
}

fn runtime() -> Runtime {
    Runtime::new(RuntimeConfig { max_concurrency: 2, ..RuntimeConfig::default() }).expect("runtime")
}

/// The role's export is called and traps (the dummy's body) when the
/// component has it; otherwise the host refuses the call, no guest run.
async fn check_role(runtime: &Runtime, plugin: &Plugin, role: Role, exported: bool, what: &str) {
    let ctx = runtime.context("t").build().expect("context");
    match (runtime.source_init(role, plugin, &ctx).await, exported) {
        (Err(RunError::Trap(_)), true) | (Err(RunError::Collector(ErrorCode::InvalidArgument, _)), false) => {}
        (other, _) => panic!("{what}: {role:?} init (exported: {exported}): {other:?}"),
    }
}

#[test]
fn every_world_of_every_supported_version_links() {
    let runtime = runtime();
    let mut lines = std::collections::BTreeSet::new();
    let mut checked = Vec::new();
    for path in packages() {
        let (resolve, pkg) = parse(&path);
        let v = version(&resolve, pkg);
        if path.is_dir() {
            let dir = path.file_name().unwrap().to_string_lossy().into_owned();
            assert_eq!(dir, format!("v{v}"), "a frozen version lives in wit/v<its version>/");
        }
        lines.insert(format!("{}.{}", v.major, v.minor));
        let worlds = &resolve.packages[pkg].worlds;
        assert!(worlds.contains_key("plugin"), "{v}: every version has the plugin world");
        for (name, &world) in worlds {
            let what = format!("cloudforet:collector/{name}@{v}");
            let bytes = build::component(&resolve, world, &build::Guest::default());
            let plugin = runtime.load_bytes(&what, &bytes).unwrap_or_else(|e| panic!("{what} does not load: {e}"));
            assert_eq!(plugin.world, v, "{what}: the version the host reports");
            let (cost, metric) = (exports(&resolve, world, "cost-source"), exports(&resolve, world, "metric-source"));
            assert_eq!((plugin.is_cost_source(), plugin.is_metric_source()), (cost, metric), "{what}: its data source roles");
            let injects = v >= semver::Version::new(0, 3, 0) || imports_function(&resolve, world, "http", "send-authenticated");
            assert_eq!(plugin.injects_credentials, injects, "{what}: whether the host adds credentials");
            block_on(async {
                let ctx = runtime.context("t").build().expect("context");
                // Instantiation links every import against the host's.
                if let Err(e) = runtime.instantiate_only(&plugin, &ctx).await {
                    panic!("{what} does not instantiate: {e:?}");
                }
                // The exports are reached: each traps, as the dummy does.
                let init = runtime.init(&plugin, &ctx).await;
                assert!(matches!(init, Err(RunError::Trap(_))), "{what}: init: {init:?}");
                check_role(&runtime, &plugin, Role::Cost, cost, &what).await;
                check_role(&runtime, &plugin, Role::Metric, metric, &what).await;
            });
            checked.push(what);
        }
    }
    eprintln!("linked: {}", checked.join(", "));
    // What the host claims is what is on disk.
    let supported: std::collections::BTreeSet<String> = SUPPORTED.iter().map(|s| s.to_string()).collect();
    assert_eq!(lines, supported, "world lines in wit/ and the host's SUPPORTED");
    for want in ["plugin@0.1.0", "plugin@0.2.0", "cost-plugin@0.2.1", "full-plugin@0.3.0", "monitoring-plugin@0.3.1"] {
        assert!(checked.iter().any(|c| c.ends_with(want)), "{want} checked: {checked:?}");
    }
}

/// `source` with `extra` inserted at the start of the body of the item
/// that opens with `opening` (e.g. `interface http {`).
fn insert_after(source: &str, opening: &str, extra: &str) -> String {
    let at = source.find(opening).unwrap_or_else(|| panic!("no `{opening}`")) + opening.len();
    format!("{}\n{extra}\n{}", &source[..at], &source[at..])
}

/// The one `.wit` file of a package (the current file, or the file of a
/// frozen version's directory).
fn wit_file(path: &Path) -> PathBuf {
    if path.is_file() {
        return path.to_path_buf();
    }
    let files: Vec<PathBuf> = std::fs::read_dir(path)
        .expect("version dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "wit"))
        .collect();
    assert_eq!(files.len(), 1, "{}: one .wit file", path.display());
    files.into_iter().next().unwrap()
}

/// The `plugin` world of WIT text.
fn plugin_of(text: &str) -> Vec<u8> {
    let mut resolve = Resolve::default();
    let pkg = resolve.push_str("modified.wit", text).unwrap_or_else(|e| panic!("{e:?}"));
    let world = resolve.packages[pkg].worlds["plugin"];
    build::component(&resolve, world, &build::Guest::default())
}

#[test]
fn a_component_importing_what_the_host_does_not_provide_is_refused() {
    let runtime = runtime();
    for path in packages() {
        let text = std::fs::read_to_string(wit_file(&path)).expect("wit text");
        // The unmodified world loads (the control of this test).
        let what = path.display().to_string();
        runtime.load_bytes(&what, &plugin_of(&text)).unwrap_or_else(|e| panic!("{what}: {e}"));
        // One function more in an interface the host provides.
        let extra_function = insert_after(&text, "interface http {", "    teleport: func(to: string) -> bool;");
        // One interface more, imported by the world.
        let extra_interface = insert_after(
            &insert_after(&text, "world plugin {", "    import teleport;"),
            &format!("package {};", resolve_name(&text)),
            "interface teleport {\n    go: func(to: string);\n}",
        );
        for (how, text) in [("one more function", extra_function), ("one more interface", extra_interface)] {
            match runtime.load_bytes("more.wasm", &plugin_of(&text)) {
                Err(LoadError::WrongWorld { link: LinkError::Link(_), .. }) => {}
                other => panic!("{what} with {how}: {:?}", other.map(|p| p.world)),
            }
        }
    }
}

/// `cloudforet:collector@<version>` of WIT text (its package line).
fn resolve_name(text: &str) -> String {
    let line = text.lines().find(|l| l.starts_with("package ")).expect("package line");
    line.trim_start_matches("package ").trim_end_matches(';').trim().to_string()
}

#[test]
fn a_world_line_the_host_does_not_serve_is_refused() {
    let runtime = runtime();
    let text = std::fs::read_to_string(wit_dir().join("collector.wit")).expect("wit text");
    let current = resolve_name(&text);
    for future in ["0.4.0", "1.0.0", "0.0.1"] {
        let text = text.replace(&format!("package {current};"), &format!("package cloudforet:collector@{future};"));
        match runtime.load_bytes("future.wasm", &plugin_of(&text)) {
            Err(LoadError::WrongWorld { link: LinkError::Unsupported { world }, .. }) => assert_eq!(world.to_string(), future),
            other => panic!("{future}: {:?}", other.map(|p| p.world)),
        }
    }
}

/// The canonical ABI bytes of one `http.outbound` of `resolve`'s `http`: a
/// GET of the URL at address `url` (`len` bytes), no headers, body,
/// timeout or credential: zeros but the URL's address and length.
fn outbound_get(resolve: &Resolve, url: u32, len: u32) -> Vec<u8> {
    use wit_parser::{Record, SizeAlign, Type, TypeDefKind};
    let (_, http) = resolve.interfaces.iter().find(|(_, i)| i.name.as_deref() == Some("http")).expect("http");
    let kind = |name: &str| &resolve.types[http.types[name]].kind;
    let record = |name: &str| match kind(name) {
        TypeDefKind::Record(r) => r,
        other => panic!("{name}: {other:?}"),
    };
    assert!(matches!(kind("method"), TypeDefKind::Enum(e) if e.cases[0].name == "get"), "GET is case 0");
    let mut sizes = SizeAlign::default();
    sizes.fill(resolve);
    let offset = |r: &Record, field: &str| {
        let i = r.fields.iter().position(|f| f.name == field).expect("field");
        sizes.field_offsets(r.fields.iter().map(|f| &f.ty))[i].0.size_wasm32()
    };
    let at = offset(record("outbound"), "request") + offset(record("request"), "url");
    let mut bytes = vec![0; sizes.size(&Type::Id(http.types["outbound"])).size_wasm32()];
    bytes[at..at + 4].copy_from_slice(&url.to_le_bytes());
    bytes[at + 4..at + 8].copy_from_slice(&len.to_le_bytes());
    bytes
}

/// A guest of the current world that starts a batch (`http.start-many`)
/// and ends, here by trapping, without finishing or dropping it: the host
/// cancels the batch with the run and counts its request for
/// `cf_host_http_requests_total`, as `aborted` (the server never answers).
#[test]
fn a_batch_left_pending_at_the_runs_end_is_counted() {
    use wasm_encoder::Instruction::{Call, Drop, End, I32Const, Unreachable};
    let runtime = runtime();
    let (resolve, pkg) = parse(&wit_dir().join("collector.wit"));
    let v = version(&resolve, pkg);
    // A server that takes connections and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("loopback");
    let endpoint = format!("http://{}", silent.local_addr().expect("bound"));
    let url = format!("{endpoint}/never");
    let (outbound_at, url_at) = (1024, 2048);
    let start_many = (format!("cloudforet:collector/http@{v}"), "start-many".to_string());
    let mut guest = build::Guest {
        data: vec![(outbound_at, outbound_get(&resolve, url_at, url.len() as u32)), (url_at, url.into_bytes())],
        ..Default::default()
    };
    let collect: build::Body = Box::new(move |imports| {
        let mut body = wasm_encoder::Function::new_with_locals_types([]);
        for i in [I32Const(outbound_at as i32), I32Const(1), Call(imports[&start_many]), Drop, Unreachable, End] {
            body.instruction(&i);
        }
        body
    });
    guest.bodies.insert(format!("cloudforet:collector/collector@{v}#collect"), collect);
    let world = resolve.packages[pkg].worlds["plugin"];
    let plugin = runtime.load_bytes("pending.wasm", &build::component(&resolve, world, &guest)).expect("loads");
    let ctx = runtime.context("t").endpoint(endpoint).build().expect("context");
    let (r, _) = block_on(cf_tests::collect_all(&runtime, &plugin, &ctx, &serde_json::json!({})));
    assert!(matches!(r, Err(RunError::Trap(_))), "{r:?}");
    let m = runtime.metrics();
    assert_eq!(m.get("cf_host_http_requests_total", &[("status", "aborted")]), 1.0);
    assert_eq!(m.get("cf_host_http_requests_total", &[]), 1.0, "counted once");
    drop(silent);
}
