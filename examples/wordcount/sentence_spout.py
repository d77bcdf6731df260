"""Emits each line of a text file once, as [sentence], tracked by its line number; a line
whose tuple tree fails is emitted again. The component's tasks share the lines."""
from collections import deque

from pystorm import Spout


class SentenceSpout(Spout):
    def initialize(self, conf, context):
        with open(conf.get("sentences.file", "sentences.txt"), encoding="utf-8") as lines:
            self.lines = [line.strip() for line in lines if line.strip()]
        me = context["componentid"]
        tasks = sorted(int(task) for task, component in context["task->component"].items()
                       if component == me)
        index = tasks.index(context["taskid"])
        self.todo = deque(range(index, len(self.lines), len(tasks)))
        self.replay = deque()

    def next_tuple(self):
        if self.replay:
            number = self.replay.popleft()
        elif self.todo:
            number = self.todo.popleft()
        else:
            return
        self.emit([self.lines[number]], tup_id=number)

    def fail(self, tup_id):
        self.replay.append(tup_id)


if __name__ == "__main__":
    SentenceSpout().run()
