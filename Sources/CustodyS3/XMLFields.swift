import Foundation

#if canImport(FoundationXML)
import FoundationXML
#endif

/// The text of chosen XML elements, in document order (S3's small XML answers: listings, errors, uploads).
enum XMLFields {
    static func parse(_ bytes: [UInt8], elements: Set<String>) -> [String: [String]] {
        final class Collector: NSObject, XMLParserDelegate {
            let wanted: Set<String>
            var found: [String: [String]] = [:]
            var current: String?
            var text = ""
            init(_ wanted: Set<String>) { self.wanted = wanted }
            func parser(
                _ parser: XMLParser,
                didStartElement name: String,
                namespaceURI: String?,
                qualifiedName: String?,
                attributes: [String: String] = [:]
            ) {
                if wanted.contains(name) {
                    current = name
                    text = ""
                }
            }
            func parser(_ parser: XMLParser, foundCharacters string: String) {
                if current != nil { text += string }
            }
            func parser(_ parser: XMLParser, didEndElement name: String, namespaceURI: String?, qualifiedName: String?)
            {
                if name == current {
                    found[name, default: []].append(text)
                    current = nil
                }
            }
        }
        let collector = Collector(elements)
        let parser = XMLParser(data: Data(bytes))
        parser.shouldResolveExternalEntities = false
        parser.delegate = collector
        _ = parser.parse()
        return collector.found
    }
}
