import MeshCore
import MeshLog
import Synchronization

/// Shares partitions among the members of each consumer group. Every join, leave and new topic
/// rebalances the group: the partitions matching the members' patterns, in sorted order, are dealt
/// out round robin to the members (sorted by id) whose pattern matches them. A partition moving to
/// another member is resumed there from the group's committed offset: delivery is at least once.
final class GroupCoordinator: Sendable {
    private struct Group {
        var members: [UInt64: Subscription] = [:]
        var generation = 0
        var assignment: [UInt64: [TopicPartition]] = [:]
    }

    private let log: DurableLog
    private let groups = Mutex<[String: Group]>([:])

    init(log: DurableLog) { self.log = log }

    func join(group: String, member: Subscription) {
        groups.withLock { $0[group, default: Group()].members[member.id] = member }
        rebalance(group)
    }

    func leave(group: String, member: Subscription) {
        groups.withLock { g in
            g[group]?.members.removeValue(forKey: member.id)
            if g[group]?.members.isEmpty == true { g.removeValue(forKey: group) }
        }
        rebalance(group)
    }

    func topicCreated(_ topic: TopicLog) {
        let affected = groups.withLock { g in
            g.filter { $0.value.members.values.contains { $0.pattern.matches(topic.topic) } }.map(\.key)
        }
        for group in affected { rebalance(group) }
    }

    func members(of group: String) -> [(member: UInt64, partitions: [TopicPartition])] {
        groups.withLock { g in
            (g[group]?.assignment ?? [:]).map { ($0.key, $0.value) }.sorted { $0.member < $1.member }
        }
    }

    private func rebalance(_ name: String) {
        // Computing and handing out under the lock keeps two rebalances of one group from
        // interleaving; `assign` only touches the member's own state.
        let plan = groups.withLock { g -> [(Subscription, [TopicPartition], Int)] in
            guard var group = g[name] else { return [] }
            let members = group.members.values.sorted { $0.id < $1.id }
            var all: [TopicPartition] = []
            for t in log.topics where members.contains(where: { $0.pattern.matches(t.topic) }) {
                for p in t.partitions { all.append(TopicPartition(topic: t.topic.name, partition: p.index)) }
            }
            var assignment: [UInt64: [TopicPartition]] = Dictionary(uniqueKeysWithValues: members.map { ($0.id, []) })
            var dealt: [Set<UInt64>: Int] = [:]
            for tp in all.sorted() {
                guard let topic = try? Topic(tp.topic) else { continue }
                let eligible = members.filter { $0.pattern.matches(topic) }
                guard !eligible.isEmpty else { continue }
                let key = Set(eligible.map(\.id))
                let turn = dealt[key, default: 0]
                dealt[key] = turn + 1
                assignment[eligible[turn % eligible.count].id]!.append(tp)
            }
            group.generation += 1
            group.assignment = assignment
            g[name] = group
            return members.map { ($0, assignment[$0.id] ?? [], group.generation) }
        }
        for (member, partitions, generation) in plan { member.assign(partitions, generation: generation) }
    }
}
