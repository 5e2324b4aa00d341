/// A search query parsed from user text: the only way that text reaches FTS5's `MATCH`.
///
/// The language (Docs/SEARCH.md section 2): words and `"quoted phrases"`, each optionally ending in `*` (prefix);
/// the operators `AND`, `OR` and `NOT` (upper case only; lower case they are words) and parentheses. Terms side
/// by side are joined by AND. `NOT` binds tightest, then `AND`, then `OR`; `NOT` needs a term on its left.
/// Every term is folded (``SearchFolding/fold(_:)``) and written into the MATCH expression as an FTS5 string
/// with its quotes doubled, and the expression is fully parenthesised from the parse tree, so no text of the
/// query is ever read by FTS5 as syntax.
package struct SearchQuery: Sendable, Equatable {
    /// The longest query accepted, in UTF-8 bytes.
    package static let maximumByteCount = 4096
    /// The most terms (words and phrases) a query may have.
    package static let maximumTermCount = 64
    /// The deepest nesting of parentheses accepted.
    package static let maximumDepth = 16

    /// A node of the parse tree.
    indirect enum Node: Sendable, Equatable {
        /// A word or phrase, folded; `prefix` when it ended in `*`.
        case term(String, prefix: Bool)
        case and([Node])
        case or([Node])
        /// Matches the left side and not the right.
        case not(Node, Node)
    }

    /// The parse tree.
    let root: Node

    /// Parses `text`.
    ///
    /// - Throws: ``SearchQueryError`` naming the problem (an unbalanced quote or parenthesis, an operator
    ///   without its terms, a term with nothing to search for, a query over the limits).
    package init(parsing text: String) throws {
        guard text.utf8.count <= Self.maximumByteCount else {
            throw SearchQueryError.tooLong(byteCount: text.utf8.count)
        }
        var parser = Parser(tokens: try Self.tokens(of: text))
        guard !parser.tokens.isEmpty else { throw SearchQueryError.empty }
        guard parser.tokens.count(where: \.isTerm) <= Self.maximumTermCount else {
            throw SearchQueryError.tooManyTerms(parser.tokens.count(where: \.isTerm))
        }
        root = try parser.parseQuery()
    }

    /// The FTS5 MATCH expression: folded terms as quoted strings, operators and parentheses from the tree.
    package var matchExpression: String { Self.expression(root) }

    private static func expression(_ node: Node) -> String {
        switch node {
        case .term(let text, let prefix):
            "\"" + CSVWriter.doublingQuotes(text) + "\"" + (prefix ? "*" : "")
        case .and(let nodes): "(" + nodes.map(expression).joined(separator: " AND ") + ")"
        case .or(let nodes): "(" + nodes.map(expression).joined(separator: " OR ") + ")"
        case .not(let left, let right): "(" + expression(left) + " NOT " + expression(right) + ")"
        }
    }

    // MARK: Tokens

    enum Token: Equatable {
        /// A word or phrase as typed (unfolded), `phrase` when it was quoted.
        case term(String, prefix: Bool, phrase: Bool)
        case and, or, not, open, close

        var isTerm: Bool { if case .term = self { true } else { false } }

        /// How the token reads in an error message.
        var shown: String {
            switch self {
            case .term(let text, let prefix, let phrase):
                (phrase ? "\"\(text)\"" : text) + (prefix ? "*" : "")
            case .and: "AND"
            case .or: "OR"
            case .not: "NOT"
            case .open: "("
            case .close: ")"
            }
        }
    }

    /// Splits `text` into tokens: whitespace and control characters separate them; `"`, `(` and `)` are
    /// syntax outside a phrase; `AND`, `OR`, `NOT` (exactly) are operators.
    static func tokens(of text: String) throws -> [Token] {
        var tokens: [Token] = []
        var scalars = text.unicodeScalars[...]
        func isSeparator(_ scalar: Unicode.Scalar) -> Bool {
            scalar.properties.isWhitespace || scalar.properties.generalCategory == .control
        }
        while let scalar = scalars.first {
            if isSeparator(scalar) {
                scalars.removeFirst()
            } else if scalar == "(" || scalar == ")" {
                tokens.append(scalar == "(" ? .open : .close)
                scalars.removeFirst()
            } else if scalar == "\"" {
                scalars.removeFirst()
                guard let end = scalars.firstIndex(of: "\"") else {
                    throw SearchQueryError.unbalancedQuote
                }
                let phrase = String(scalars[..<end])
                scalars = scalars[scalars.index(after: end)...]
                var prefix = false
                while scalars.first == "*" {
                    prefix = true
                    scalars.removeFirst()
                }
                tokens.append(.term(phrase, prefix: prefix, phrase: true))
            } else {
                let end = scalars.firstIndex { isSeparator($0) || $0 == "(" || $0 == ")" || $0 == "\"" }
                var word = String.UnicodeScalarView(scalars[..<(end ?? scalars.endIndex)])
                scalars = scalars[(end ?? scalars.endIndex)...]
                switch String(word) {
                case "AND": tokens.append(.and)
                case "OR": tokens.append(.or)
                case "NOT": tokens.append(.not)
                default:
                    var prefix = false
                    while word.last == "*" {
                        prefix = true
                        word.removeLast()
                    }
                    tokens.append(.term(String(word), prefix: prefix, phrase: false))
                }
            }
        }
        return tokens
    }

    // MARK: Parser

    /// Recursive descent over the tokens; depth bounded by ``SearchQuery/maximumDepth``.
    struct Parser {
        let tokens: [Token]
        var position = 0
        var depth = 0

        init(tokens: [Token]) { self.tokens = tokens }

        var next: Token? { position < tokens.count ? tokens[position] : nil }

        /// query := or, and nothing after it.
        mutating func parseQuery() throws -> Node {
            let node = try parseOr()
            // Only a `)` without its `(` stops an or-expression before the end.
            if next != nil { throw SearchQueryError.unopenedParenthesis }
            return node
        }

        /// or := and ("OR" and)*
        mutating func parseOr() throws -> Node {
            var nodes = [try parseAnd(after: nil)]
            while next == .or {
                position += 1
                nodes.append(try parseAnd(after: .or))
            }
            return nodes.count == 1 ? nodes[0] : .or(nodes)
        }

        /// and := not (["AND"] not)*
        mutating func parseAnd(after op: Token?) throws -> Node {
            var nodes = [try parseNot(after: op)]
            while let token = next, token != .or, token != .close {
                if token == .and {
                    position += 1
                    nodes.append(try parseNot(after: .and))
                } else {
                    nodes.append(try parseNot(after: nil))
                }
            }
            return nodes.count == 1 ? nodes[0] : .and(nodes)
        }

        /// not := primary ("NOT" primary)*
        mutating func parseNot(after op: Token?) throws -> Node {
            var node = try parsePrimary(after: op)
            while next == .not {
                position += 1
                node = .not(node, try parsePrimary(after: .not))
            }
            return node
        }

        /// primary := term | "(" or ")"; `op` is the operator just read, for the message when a term is missing.
        mutating func parsePrimary(after op: Token?) throws -> Node {
            guard let token = next else {
                if let op { throw SearchQueryError.missingTermAfter(op.shown) }
                throw SearchQueryError.empty
            }
            switch token {
            case .term(let text, let prefix, let phrase):
                position += 1
                let folded = SearchFolding.fold(text)
                guard folded.unicodeScalars.contains(where: Self.isSearchable) else {
                    if phrase && text.isEmpty { throw SearchQueryError.emptyPhrase }
                    throw SearchQueryError.nothingToSearch(token.shown)
                }
                return .term(folded, prefix: prefix)
            case .open:
                position += 1
                depth += 1
                guard depth <= SearchQuery.maximumDepth else { throw SearchQueryError.tooDeep }
                guard let inner = next else { throw SearchQueryError.unclosedParenthesis }
                guard inner != .close else { throw SearchQueryError.emptyParentheses }
                let node = try parseOr()
                guard next == .close else { throw SearchQueryError.unclosedParenthesis }
                position += 1
                depth -= 1
                return node
            case .not:
                throw SearchQueryError.notWithoutLeft
            case .and, .or, .close:
                if let op { throw SearchQueryError.missingTermAfter(op.shown) }
                if token == .close { throw SearchQueryError.unopenedParenthesis }
                throw SearchQueryError.missingTermBefore(token.shown)
            }
        }

        /// Whether SQLite's tokenizer keeps `scalar` in a token (its default categories `L* N* Co`).
        static func isSearchable(_ scalar: Unicode.Scalar) -> Bool {
            switch scalar.properties.generalCategory {
            case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter,
                .decimalNumber, .letterNumber, .otherNumber, .privateUse:
                true
            default: false
            }
        }
    }
}

/// Why a search query was refused: each one line, naming the problem and the fix (a usage error, exit 64).
package enum SearchQueryError: Error, Sendable, Equatable, CustomStringConvertible {
    case empty
    case tooLong(byteCount: Int)
    case tooManyTerms(Int)
    case tooDeep
    case unbalancedQuote
    case emptyPhrase
    case unclosedParenthesis
    case unopenedParenthesis
    case emptyParentheses
    /// An operator (AND, OR, NOT) with no term after it.
    case missingTermAfter(String)
    /// AND or OR with no term before it.
    case missingTermBefore(String)
    case notWithoutLeft
    /// A word or phrase with no letter or digit in it (e.g. `-` or `*`).
    case nothingToSearch(String)

    /// What is wrong.
    package var problem: String {
        switch self {
        case .empty: "the search query is empty"
        case .tooLong(let count):
            "the search query is \(count) bytes long, over the limit of \(SearchQuery.maximumByteCount)"
        case .tooManyTerms(let count):
            "the search query has \(count) words or phrases, over the limit of \(SearchQuery.maximumTermCount)"
        case .tooDeep: "the search query nests parentheses deeper than \(SearchQuery.maximumDepth) levels"
        case .unbalancedQuote: "the search query has a \" without its closing \""
        case .emptyPhrase: "the search query has an empty phrase \"\""
        case .unclosedParenthesis: "the search query has a ( without its closing )"
        case .unopenedParenthesis: "the search query has a ) without its opening ("
        case .emptyParentheses: "the search query has empty parentheses ()"
        case .missingTermAfter(let op): "the search query has nothing to search for after \(op)"
        case .missingTermBefore(let op): "the search query has nothing to search for before \(op)"
        case .notWithoutLeft: "the search query has NOT with nothing before it"
        case .nothingToSearch(let term):
            "the search term \(TerminalText.escape(String(term.prefix(40)))) has no letter or digit to search for"
        }
    }

    /// How to fix it.
    package var fix: String {
        switch self {
        case .empty: "give words to search for"
        case .tooLong, .tooManyTerms: "search for fewer words"
        case .tooDeep: "use fewer parentheses"
        case .unbalancedQuote: "close the phrase with \", or remove the quote"
        case .emptyPhrase, .emptyParentheses: "remove it, or put words in it"
        case .unclosedParenthesis: "add the closing ), or remove the ("
        case .unopenedParenthesis: "add the opening (, or remove the )"
        case .missingTermAfter, .missingTermBefore:
            "put a word on each side of AND and OR, e.g. roof AND aleppo (lower-case and, or, not are words)"
        case .notWithoutLeft:
            "write what to find before NOT, e.g. aleppo NOT draft (lower-case and, or, not are words)"
        case .nothingToSearch: "remove it, or quote it together with the words around it"
        }
    }

    package var description: String { "\(problem) — \(fix)" }
}
