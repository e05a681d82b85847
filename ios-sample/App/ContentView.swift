// Platform glue: QR activation (VisionKit scanner), the OTP screen and the
// approval sheet. The decisions are in CountersignSampleKit (tested on Linux).
import Countersign
import CountersignSampleKit
import SwiftUI
import VisionKit

extension Model {
    /// A scanned code: a sign-in page's QR login opens its approval sheet;
    /// anything else is an account to add.
    func scanned(_ text: String) async {
        guard case .login(let uri) = classify(text) else { return await add(text) }
        do {
            cards.append(try await push.onLoginQr(uri))
        } catch {
            status = actionResult(error).message
        }
    }

    /// Activates or imports a scanned code.
    func add(_ text: String, pin: String? = nil) async {
        do {
            let account = try await activation.add(text, pin: pin)
            status = "Added \(account.label)"
        } catch {
            status = actionResult(error).message
        }
    }

    /// Fetches pending requests once.
    func refreshPending() async {
        if let requests = try? await authenticator.awaitPending(wait: .zero) {
            cards = requests.map(push.card)
        }
    }
}

/// The one screen: codes, the approval sheet, the PIN alert.
struct ContentView: View {
    @EnvironmentObject var model: Model
    @EnvironmentObject var prompts: PromptState
    @State private var scanning = false
    @State private var rows: [OtpRow] = []
    @State private var number = ""
    @State private var pin = ""
    private let tick = Timer.publish(every: 1, on: .main, in: .common).autoconnect()

    var body: some View {
        NavigationStack {
            List {
                Section("Codes") {
                    ForEach(rows, id: \.accountId) { row in
                        VStack(alignment: .leading) {
                            Text(row.title).font(.caption)
                            Text(row.code).font(.title.monospacedDigit())
                            Text(row.timeLeft.map { "\($0.components.seconds) s" } ?? "tap for next").font(.caption2)
                        }
                        .onTapGesture { if row.timeLeft == nil { Task { _ = await model.otp.next(row.accountId) } } }
                    }
                }
                if !model.status.isEmpty { Text(model.status) }
            }
            .navigationTitle("Countersign")
            .toolbar { Button("Scan") { scanning = true } }
            .onReceive(tick) { _ in Task { rows = await model.otp.rows() } }
            .task { await model.refreshPending() }
            .sheet(isPresented: $scanning) {
                QRScanner { text in
                    scanning = false
                    Task { await model.scanned(text) }
                }
            }
            .sheet(item: Binding(get: { model.cards.first.map(IdentifiedCard.init) }, set: { _ in })) { item in
                approval(item.card)
            }
            .alert(prompts.pinRequest?.title ?? "", isPresented: .constant(prompts.pinRequest != nil)) {
                SecureField("PIN", text: $pin).keyboardType(.numberPad)
                Button("OK") { prompts.finishPin(pin); pin = "" }
                Button("Cancel", role: .cancel) { prompts.finishPin(nil); pin = "" }
            } message: { Text(prompts.pinRequest?.subtitle ?? "") }
        }
    }

    @ViewBuilder private func approval(_ card: RequestCard) -> some View {
        VStack(spacing: 16) {
            Text(card.title).font(.headline)
            Text(card.body)
            // Reverse matching (QR login): the user types this on the sign-in page.
            if let shown = card.showNumber {
                Text("Type \(shown) on the sign-in page").font(.title.monospacedDigit())
            }
            if let choices = card.pickChoices {
                HStack { ForEach(choices, id: \.self) { c in Button(c) { answer(card, c) }.buttonStyle(.borderedProminent) } }
            } else {
                if card.typeDigits != nil { TextField("Number on the sign-in page", text: $number).keyboardType(.numberPad) }
                Button("Approve") { answer(card, card.typeDigits == nil ? nil : number) }.buttonStyle(.borderedProminent)
            }
            Button("It wasn't me", role: .destructive) { Task { finish(card, await model.push.deny(card, notMe: true)) } }
        }
        .padding()
    }

    private func answer(_ card: RequestCard, _ n: String?) {
        Task { finish(card, await model.push.approve(card, number: n)) }
    }

    private func finish(_ card: RequestCard, _ result: ActionResult) {
        if case .retry(let message) = result {
            model.status = message
            return
        }
        model.cards.removeAll { $0.txId == card.txId }
        // A queued answer says it will be sent: the user is not asked again.
        model.status = result.message
        number = ""
    }
}

/// A card as a sheet item.
struct IdentifiedCard: Identifiable {
    let card: RequestCard
    var id: String { card.txId }
}

/// VisionKit's live QR scanner.
struct QRScanner: UIViewControllerRepresentable {
    let found: (String) -> Void

    func makeUIViewController(context: Context) -> DataScannerViewController {
        let scanner = DataScannerViewController(recognizedDataTypes: [.barcode(symbologies: [.qr])])
        scanner.delegate = context.coordinator
        try? scanner.startScanning()
        return scanner
    }

    func updateUIViewController(_ controller: DataScannerViewController, context: Context) {}

    func makeCoordinator() -> Coordinator { Coordinator(found: found) }

    final class Coordinator: NSObject, DataScannerViewControllerDelegate {
        let found: (String) -> Void
        init(found: @escaping (String) -> Void) { self.found = found }
        func dataScanner(_ scanner: DataScannerViewController, didAdd items: [RecognizedItem], allItems: [RecognizedItem]) {
            for case .barcode(let code) in items {
                if let text = code.payloadStringValue { found(text); return }
            }
        }
    }
}
