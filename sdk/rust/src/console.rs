//! What CloudForet's console makes of records, as types: the label
//! vocabulary ([`Label`]: the only labels its service menu filters by), the
//! continents its region map knows, and a type's icon ([`Icon`], read from
//! the type's `spaceone:icon` tag).

/// The console's service categories (`CLOUD_SERVICE_CATEGORY`). A
/// CloudServiceType's labels come from this list; `Server` puts the type on
/// the Server page and, when primary, into the home page's Server Count.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Label {
    Server,
    Compute,
    Container,
    Database,
    Networking,
    Storage,
    Security,
    Analytics,
    ApplicationIntegration,
    Management,
}

impl Label {
    pub const ALL: [Label; 10] = [
        Label::Server,
        Label::Compute,
        Label::Container,
        Label::Database,
        Label::Networking,
        Label::Storage,
        Label::Security,
        Label::Analytics,
        Label::ApplicationIntegration,
        Label::Management,
    ];

    /// As the console spells it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Label::Server => "Server",
            Label::Compute => "Compute",
            Label::Container => "Container",
            Label::Database => "Database",
            Label::Networking => "Networking",
            Label::Storage => "Storage",
            Label::Security => "Security",
            Label::Analytics => "Analytics",
            Label::ApplicationIntegration => "Application Integration",
            Label::Management => "Management",
        }
    }

    /// The label spelled `s`, if the console knows it.
    pub fn parse(s: &str) -> Option<Label> {
        Label::ALL.into_iter().find(|l| l.as_str() == s)
    }
}

/// The continents the console's map knows (`CONTINENT_LABEL_MAP`): a
/// Region's `continent` tag.
pub const CONTINENTS: [&str; 6] = ["africa", "europe", "north_america", "south_america", "asia_pacific", "middle_east"];

/// The tag the console reads a type's icon from.
pub const ICON_TAG: &str = "spaceone:icon";

/// A type's icon: an SVG shipped in the collector, shown from a base URL
/// where the operator serves the icons, else inline as a `data:` URL (air-
/// gapped consoles show it too).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Icon {
    /// File name under the base URL, e.g. `virtual-machine.svg`.
    pub file: &'static str,
    /// The SVG itself (`include_str!`).
    pub svg: &'static str,
}

impl Icon {
    /// The `spaceone:icon` URL: `<base>/<file>`, else a `data:` URL.
    pub fn url(&self, base: Option<&str>) -> String {
        match base {
            Some(base) => format!("{}/{}", base.trim_end_matches('/'), self.file),
            None => format!("data:image/svg+xml;base64,{}", base64(self.svg.trim_end().as_bytes())),
        }
    }
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_round_trip_and_are_the_consoles() {
        for l in Label::ALL {
            assert_eq!(Label::parse(l.as_str()), Some(l));
        }
        assert_eq!(Label::parse("Application Integration"), Some(Label::ApplicationIntegration));
        assert_eq!(Label::parse("Virtual Machine"), None);
    }

    #[test]
    fn icon_urls() {
        let i = Icon { file: "x.svg", svg: "<svg/>\n" };
        assert_eq!(i.url(Some("https://cdn.example.com/icons/")), "https://cdn.example.com/icons/x.svg");
        // base64("<svg/>") without the trailing newline.
        assert_eq!(i.url(None), "data:image/svg+xml;base64,PHN2Zy8+");
        // RFC 4648's vectors.
        for (raw, enc) in [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foobar", "Zm9vYmFy")] {
            assert_eq!(base64(raw.as_bytes()), enc);
        }
        assert_eq!(base64(&[0xff, 0xfe]), "//4=");
    }
}
