/// "Did you mean …?" for misspelt keys, module names and enumerated values.
enum Suggestions {
    /// The candidate closest to `word`, when one is close enough to be a likely typo: the same
    /// word in another case or spelling (`nfsPort`, `nfs-port` → `nfs_port`), a word of four or
    /// more characters that a candidate contains (`uring` → `io_uring`), or within an edit
    /// distance (insertions, deletions, substitutions and swaps of neighbours) of 1 for short
    /// words and 2 for words of five characters or more.
    static func closest(to word: String, among candidates: [String]) -> String? {
        let normalizedWord = normalize(word)
        if let same = candidates.first(where: { normalize($0) == normalizedWord }) { return same }
        // A word that is most of a candidate ("uring" for io_uring, "delegation" for
        // delegation_threads).
        if normalizedWord.count >= 4,
           let containing = candidates.first(where: { normalize($0).contains(normalizedWord) }) {
            return containing
        }
        let limit = word.count >= 5 ? 2 : 1
        var best: (candidate: String, distance: Int)?
        for candidate in candidates {
            let d = distance(Array(word.lowercased().unicodeScalars), Array(candidate.lowercased().unicodeScalars))
            if d <= limit && d < (best?.distance ?? Int.max) { best = (candidate, d) }
        }
        return best?.candidate
    }

    /// `Did you mean "threads"? ` or "" (note the trailing space, for prefixing a fix).
    static func didYouMean(_ word: String, among candidates: [String]) -> String {
        guard let match = closest(to: word, among: candidates) else { return "" }
        return "Did you mean \(JSONValue.quoted(match))? "
    }

    private static func normalize(_ s: String) -> String {
        String(s.lowercased().unicodeScalars.filter { $0 != "_" && $0 != "-" && $0 != " " })
    }

    /// Optimal string alignment distance (Levenshtein plus transpositions of neighbours).
    static func distance(_ a: [Unicode.Scalar], _ b: [Unicode.Scalar]) -> Int {
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var previous2 = [Int](repeating: 0, count: b.count + 1)
        var previous = Array(0...b.count)
        var current = [Int](repeating: 0, count: b.count + 1)
        for i in 1...a.count {
            current[0] = i
            for j in 1...b.count {
                let cost = a[i - 1] == b[j - 1] ? 0 : 1
                var d = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
                if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                    d = min(d, previous2[j - 2] + 1)
                }
                current[j] = d
            }
            (previous2, previous, current) = (previous, current, previous2)
        }
        return previous[b.count]
    }
}
