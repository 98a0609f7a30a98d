"""The MLP's linear shortcut (``skip``) and seed ensemble (``members``), checked against hand computations."""

from __future__ import annotations

import copy

import torch

from kt.tabular import MLPRegressor
from kt.tabular.nets import MLP, Members


def test_skip_adds_a_linear_map_of_the_inputs() -> None:
    torch.manual_seed(0)
    net = MLP(5, [4, 3], skip=True)
    x = torch.randn(7, 5)
    hidden = torch.relu(torch.relu(x @ net.layers[0].weight.T + net.layers[0].bias) @ net.layers[2].weight.T
                        + net.layers[2].bias)
    deep = hidden @ net.layers[4].weight.T + net.layers[4].bias
    wide = x @ net.shortcut.weight.T + net.shortcut.bias
    torch.testing.assert_close(net(x), (deep + wide).squeeze(-1))
    # With the deep part's output weights at zero, the network is the linear model.
    with torch.no_grad():
        net.layers[4].weight.zero_()
        net.layers[4].bias.zero_()
    torch.testing.assert_close(net(x), wide.squeeze(-1))
    assert MLP(5, [4]).shortcut is None


def test_members_predict_their_mean() -> None:
    torch.manual_seed(0)
    ens = Members(lambda: MLP(3, [4]), 3)
    x = torch.randn(6, 3)
    expected = sum(m(x) for m in ens.members) / 3
    torch.testing.assert_close(ens(x), expected)
    assert ens.each(x).shape == (3, 6)
    # Independent initialisations.
    assert not torch.equal(ens.members[0].layers[0].weight, ens.members[1].layers[0].weight)


def test_each_member_trains_as_if_alone() -> None:
    """One SGD step of a 2-member model moves each member exactly as the same network trained alone."""
    torch.manual_seed(0)
    model = MLPRegressor(hidden_sizes=[4], members=2, skip=True, optimizer="sgd", lr=0.1, momentum=0.0,
                         input_size=3, loss="huber")
    alone = [copy.deepcopy(m) for m in model.net.members]
    batch = {"x": torch.randn(8, 3), "y": torch.randn(8)}
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    opt.zero_grad()
    model.training_step(batch, 0).backward()
    opt.step()
    for member, net in zip(model.net.members, alone):
        sgd = torch.optim.SGD(net.parameters(), lr=0.1)
        sgd.zero_grad()
        torch.nn.functional.huber_loss(net(batch["x"]), batch["y"]).backward()
        sgd.step()
        for a, b in zip(member.parameters(), net.parameters()):
            torch.testing.assert_close(a, b)
    # A single network keeps the checkpoint layout of earlier versions (net.layers...).
    assert isinstance(MLPRegressor(input_size=3).net, MLP)
