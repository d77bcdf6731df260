"""Emits [word] tuples at about `trending.rate` a second, drawn so that a few words are hot
at any time and which ones changes every `trending.shift.secs` seconds: something for the
rolling counts to find. Unreliable emits: a lost word is not worth replaying."""
import random
import time

from pystorm import Spout

WORDS = (
    "storm squall gale breeze tempest cyclone monsoon typhoon drizzle thunder lightning "
    "hail sleet frost mist fog cloud rain snow wind calm front pressure humidity"
).split()


class WordSpout(Spout):
    def initialize(self, conf, context):
        self.interval = 1.0 / float(conf.get("trending.rate", 200))
        self.shift = float(conf.get("trending.shift.secs", 10))
        self.random = random.Random(context["taskid"])
        self.next_emit = time.monotonic()

    def next_tuple(self):
        now = time.monotonic()
        if now < self.next_emit:
            time.sleep(min(self.next_emit - now, 0.05))
            return
        self.next_emit += self.interval
        # Three hot words per period, each drawn as often as the rest together.
        period = int(time.time() // self.shift)
        hot = random.Random(period).sample(WORDS, 3)
        if self.random.random() < 0.5:
            word = self.random.choice(hot)
        else:
            word = self.random.choice(WORDS)
        self.emit([word])


if __name__ == "__main__":
    WordSpout().run()
