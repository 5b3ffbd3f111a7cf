//! A CloudForet collector for cf-host: one cloud service type, one cloud service.
use cloudforet_collector::layout::{search, text, view};
use cloudforet_collector::{export, CloudService, CloudServiceType, Collector, Error, Icon, Io, Label, Metadata, Summary};
use serde_json::{json, Value};

/// The provider of its records: the crate's name.
const PROVIDER: &str = env!("CARGO_PKG_NAME");
const ICON: Icon = Icon { file: "hello.svg", svg: r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24"><circle cx="12" cy="12" r="10" fill="#6638b6"/></svg>"## };

pub struct Hello;

impl Collector for Hello {
    fn init(_options: &str) -> Result<Metadata, Error> {
        Ok(Metadata::inventory())
    }

    fn collect(io: &mut Io<'_>, options: &str, _secret: &str, _task: &str) -> Result<Summary, Error> {
        let options: Value = serde_json::from_str(options).map_err(|e| Error::InvalidArgument(format!("options: {e}")))?;
        let layout = view(vec![search("Text", "data.text")], "name", vec![text("Text", "data.text")], vec![]);
        let kind = CloudServiceType::builder(PROVIDER, "Hello", "Greeting").labels(&[Label::Management]).primary().major();
        let kind = kind.icon(&ICON, None).layout(layout).build()?;
        let greeting = CloudService::builder(PROVIDER, "Hello", "Greeting", "hello-1", "greeting").data(json!({"text": options["greeting"].as_str().unwrap_or("Hello, CloudForet")}));
        io.emit(vec![kind.into(), greeting.build()?.into()]);
        Ok(Summary { emitted: 2, errors: 0 })
    }
}

export!(Hello);

#[cfg(test)]
mod tests {
    use cloudforet_collector::testing::{MemState, MockHttp, VecSink};
    use cloudforet_collector::{Collector, Io};

    use cloudforet_collector::{Error, Record};

    #[test]
    fn emits_a_type_and_the_greeting_asked_for() {
        let (mut http, mut sink, mut state) = (MockHttp::answers(vec![]), VecSink::default(), MemState::default());
        let mut io = Io { http: &mut http, sink: &mut sink, state: &mut state };
        let s = super::Hello::collect(&mut io, r#"{"greeting": "hi"}"#, "{}", "{}").unwrap();
        assert!(matches!(super::Hello::collect(&mut io, "[", "{}", "{}"), Err(Error::InvalidArgument(_))));
        assert_eq!((s.emitted, sink.records.len(), http.sent.len()), (2, 2, 0));
        let Record::CloudService(c) = &sink.records[1] else { panic!("{:?}", sink.records[1]) };
        assert_eq!(c.data["text"], "hi");
    }
}
