"""A DeepAR-style network, the alternative the N-BEATS-style one was chosen over (see
network.py and `make bench-deep`): a GRU reads the standardised series step by step and
gives a Gaussian for the next value; it is trained on the lookback and horizon with
teacher forcing (negative log-likelihood), and forecasts by sampling paths step by step,
each sample fed back as the next input; quantiles are those of the samples.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

SAMPLES = 200


def init(key, cfg):
    """GRU weights (width = hidden size) and the Gaussian head."""
    h, n_in = cfg.width, 2 + cfg.related
    k = jax.random.split(key, 3)
    return {
        "wx": jax.random.normal(k[0], (n_in, 3 * h), jnp.float32) * np.sqrt(1.0 / n_in),
        "wh": jax.random.normal(k[1], (h, 3 * h), jnp.float32) * np.sqrt(1.0 / h),
        "b": jnp.zeros((3 * h,), jnp.float32),
        "out": {"w": jax.random.normal(k[2], (h, 2), jnp.float32) * 0.01, "b": jnp.zeros((2,), jnp.float32)},
    }


def _step(p, h, inp):
    n = h.shape[-1]
    gx, gh = inp @ p["wx"] + p["b"], h @ p["wh"]
    r = jax.nn.sigmoid(gx[:, :n] + gh[:, :n])
    z = jax.nn.sigmoid(gx[:, n:2 * n] + gh[:, n:2 * n])
    c = jnp.tanh(gx[:, 2 * n:] + r * gh[:, 2 * n:])
    return (1 - z) * c + z * h


def _gaussian(p, h):
    o = h @ p["out"]["w"] + p["out"]["b"]
    return o[:, 0], jax.nn.softplus(o[:, 1]) + 1e-3


def _inputs(values, mask, related):
    # [time, batch, features]: the previous value, whether it was observed, the related values.
    parts = [values[..., None], mask[..., None]] + ([jnp.moveaxis(related, 1, -1)] if related.shape[1] else [])
    return jnp.moveaxis(jnp.concatenate(parts, axis=-1), 1, 0)


def _encode(p, cfg, x, xm, rx):
    h0 = jnp.zeros((x.shape[0], cfg.width), jnp.float32)
    h, _ = jax.lax.scan(lambda h, inp: (_step(p, h, inp), None), h0, _inputs(x, xm, rx))
    return h


def loss(p, cfg, x, xm, rx, y):
    """Mean Gaussian negative log-likelihood of each observed value given those before it."""
    z = jnp.concatenate([x, y], axis=-1)
    m = jnp.concatenate([xm, jnp.ones_like(y)], axis=-1)
    r = jnp.concatenate([rx, jnp.repeat(rx[..., -1:], y.shape[-1], axis=-1)], axis=-1)
    h0 = jnp.zeros((x.shape[0], cfg.width), jnp.float32)

    def body(h, inp):
        h = _step(p, h, inp)
        return h, _gaussian(p, h)

    _, (mu, sigma) = jax.lax.scan(body, h0, _inputs(z[:, :-1], m[:, :-1], r[..., :-1]))
    target, weight = jnp.moveaxis(z[:, 1:], 1, 0), jnp.moveaxis(m[:, 1:], 1, 0)
    nll = jnp.log(sigma) + 0.5 * ((target - mu) / sigma) ** 2
    return jnp.sum(nll * weight) / jnp.maximum(jnp.sum(weight), 1.0)


def quantiles(p, cfg, x, xm, rx, key):
    """Quantiles [batch, horizon, levels] of SAMPLES sampled paths."""
    h = jnp.repeat(_encode(p, cfg, x, xm, rx), SAMPLES, axis=0)
    last_related = jnp.repeat(rx[..., -1], SAMPLES, axis=0)

    def body(h, k):
        mu, sigma = _gaussian(p, h)
        sample = mu + sigma * jax.random.normal(k, mu.shape)
        inp = jnp.concatenate([sample[:, None], jnp.ones_like(sample)[:, None], last_related], axis=-1)
        return _step(p, h, inp), sample

    _, paths = jax.lax.scan(body, h, jax.random.split(key, cfg.horizon))  # [horizon, batch × samples]
    paths = paths.reshape(cfg.horizon, x.shape[0], SAMPLES)
    q = jnp.quantile(paths, jnp.asarray(cfg.levels), axis=-1)  # [levels, horizon, batch]
    return jnp.transpose(q, (2, 1, 0))
