"""A pystorm bolt that passes every tuple on unchanged (anchored, then acked): the shell
bolt of the squall-bench `shell-bolt` scenario."""
from pystorm import Bolt


class IdentityBolt(Bolt):
    def process(self, tup):
        self.emit(tup.values)


if __name__ == "__main__":
    IdentityBolt().run()
