@testable import AlmanacPipeline
@testable import AlmanacAPI
import Hummingbird
import Testing

/// The kept answers of the QueryForecast path: found by their whole key, bounded by bytes,
/// recently used ones kept.
@Suite struct ForecastAnswersTests {
    func key(_ item: String, forecast: String = "f1", tenant: String = "acme", csv: Bool = false) -> ForecastAnswers.Key {
        .init(tenant: tenant, dataset: "sales", item: item, forecastID: forecast, csv: csv)
    }

    @Test func anAnswerIsFoundByItsWholeKeyOnly() {
        let answers = ForecastAnswers(budget: 1 << 20)
        answers.keep(key("A"), ByteBuffer(string: "json of A"))
        #expect(answers.answer(key("A")).map { String(buffer: $0) } == "json of A")
        for other in [key("B"), key("A", forecast: "f2"), key("A", tenant: "globex"), key("A", csv: true),
                      ForecastAnswers.Key(tenant: "acme", dataset: "other", item: "A", forecastID: "f1", csv: false)] {
            #expect(answers.answer(other) == nil, "\(other)")
        }
    }

    @Test func theBytesHeldStayWithinTheBudgetAndRecentAnswersStay() {
        let budget = 64 << 10
        let answers = ForecastAnswers(budget: budget)
        let body = ByteBuffer(repeating: 0x41, count: 1000)
        let size = key("item-0").size + 1000
        // Item 0 is asked for after every new answer; the others only once.
        for n in 0..<1000 {
            answers.keep(key("item-\(n)"), body)
            #expect(answers.answer(key("item-0")) != nil, "the answer asked for all along was dropped at \(n)")
            let (entries, _) = answers.counts
            #expect(entries * size <= budget + size, "\(entries) answers of \(size) bytes over a budget of \(budget)")
        }
        #expect(answers.answer(key("item-1")) == nil, "an answer not asked for again was dropped")
        #expect(answers.answer(key("item-999")) != nil)
        // An answer over a quarter of the budget is not kept.
        answers.keep(key("huge"), ByteBuffer(repeating: 0x41, count: budget / 4 + 1))
        #expect(answers.answer(key("huge")) == nil)
    }
}
