# %% [markdown]
# # The VAE with a VampPrior: the theory, with small runnable checks
#
# Tomczak & Welling, *VAE with a VampPrior*, AISTATS 2018.
#
# In a variational auto-encoder (VAE) the prior $p(z)$ is usually fixed to $\mathcal N(0, I)$.
# The paper asks which prior is *best* for a given encoder. The answer is the **aggregated
# posterior**. Using it directly would overfit and cost too much, so the paper approximates it with
# a mixture of the encoder's own posteriors at $K$ learned **pseudo-inputs**: the *Variational
# Mixture of Posteriors* prior, or VampPrior.
#
# Contents:
# 1. The VAE and the ELBO: distortion and rate, and the reparameterization trick (with a check).
# 2. Why $\mathcal N(0, I)$ over-regularizes: the rate splits into $I(x;z)$ plus
#    $\mathrm{KL}(q(z)\,\|\,p(z))$.
# 3. The VampPrior, VampPrior-data, the mixture-of-Gaussians prior and the hierarchical VampPrior VAE.
# 4. A 2-D latent toy on static MNIST: the aggregated posterior next to each prior.
# 5. Importance-sampled log-likelihood: how the estimate grows with the number of samples $S$.
# 6. Grey images: the discretized logistic likelihood, and bits per dimension.
#
# All model code lives in `vae_lib`. This notebook only calls it, does some toy numpy and draws
# figures. The `profile` parameter is one of the project's budgets (`vae_lib.pipeline.config.PROFILES`):
# `quick` (the default: a few minutes on 2 CPU cores, the figures show what the text says),
# `smoke` (seconds; the numbers mean little, the tests run it) or `paper` (hours).

# %%
import importlib.util, os, subprocess, sys  # noqa: E401
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # quiet TensorFlow's C++ start-up lines (before it loads)
if importlib.util.find_spec("vae_lib") is None:  # a fresh Colab runtime: set VAE_LIB_REPOSITORY first (README, Colab)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    f"vae_lib @ git+{os.environ['VAE_LIB_REPOSITORY']}"], check=True)

import time

import matplotlib.pyplot as plt
import numpy as np

import tensorflow as tf
from vae_lib import StandardNormal, densities, estimators
from vae_lib.datasets import load_dataset, static_mnist_test_digits
from vae_lib.pipeline.build import build_model, reduced_splits
from vae_lib.pipeline.config import PROFILES, make_config
from vae_lib.pipeline.trainer import Trainer
from vae_lib.plots import image_grid

# %matplotlib inline

# %% tags=["parameters"]
profile = "quick"  # one of the project's profiles: "smoke" (seconds), "quick" (minutes), "paper" (hours)
seed = 0
data_dir = None  # None: $VAE_DATA_DIR (or vae_lib downloads the files into its cache)

# %% [markdown]
# The budget comes from the profile; the models of section 4 have a 2-D latent space, so that we
# can look at it. How many test images the figures and the log-likelihood use follows from the
# profile's test subset, and the largest $S$ of section 5 is the profile's.

# %% tags=["nbval-check-output"]
settings = PROFILES[profile]
n_test = settings.get("max_test") or 10_000
B = dict(n_plot=min(2000, n_test), n_ll=min(300, n_test),
         S=[s for s in (1, 10, 100, 1000) if s < settings["eval_samples"]] + [settings["eval_samples"]])
print(f"profile {profile!r}, seed {seed}: up to {settings['epochs']} epochs (KL warm-up "
      f"{settings['warmup_epochs']}, patience {settings['patience']}), K={settings['components']}, "
      f"{settings.get('max_train') or 'all'} training images, S up to {settings['eval_samples']}")
notebook_started = time.perf_counter()

# %% [markdown]
# ## 1. The VAE and the evidence lower bound (ELBO)
#
# A VAE is a latent-variable model $p_\theta(x) = \int p_\theta(x\mid z)\,p(z)\,dz$. The decoder
# $p_\theta(x\mid z)$ is a neural network; here it outputs one Bernoulli probability per pixel.
# The integral has no closed form, so an **encoder** $q_\phi(z\mid x) =
# \mathcal N\big(z;\,\mu_\phi(x),\,\mathrm{diag}\,\sigma^2_\phi(x)\big)$ approximates the posterior.
# Jensen's inequality then gives the ELBO:
#
# $$
# \log p_\theta(x) \;\ge\; \mathcal L(x) \;=\;
# \underbrace{\mathbb E_{q_\phi(z\mid x)}\big[\log p_\theta(x\mid z)\big]}_{-\text{distortion}}
# \;-\; \underbrace{\mathrm{KL}\big(q_\phi(z\mid x)\,\|\,p(z)\big)}_{\text{rate}} .
# $$
#
# The gap is $\log p(x) - \mathcal L(x) = \mathrm{KL}(q_\phi(z\mid x)\,\|\,p_\theta(z\mid x))$.
# The two terms pull against each other:
# * The **distortion** $D = -\mathbb E_q[\log p(x\mid z)]$ is the reconstruction error, in nats. It
#   goes down when the code $z$ carries more information about $x$.
# * The **rate** $R = \mathrm{KL}(q(z\mid x)\,\|\,p(z))$ is roughly how many nats the code spends
#   on $x$, measured against the prior. The prior enters the objective **only through the rate**.
#
# Training maximizes $\frac1N\sum_n \mathcal L(x_n)$ over $\theta$ and $\phi$ by stochastic
# gradients. In `vae_lib` the rate is weighted by a KL warm-up factor $\beta$ (`model.kl_weight`, set
# by the `KLWarmup` callback) that rises from 0 to 1. To get low-variance gradients through the expectation, the sample is written as a
# deterministic function of the parameters plus parameter-free noise. This is the
# **reparameterization trick**:
#
# $$ z = \mu_\phi(x) + \sigma_\phi(x)\odot\epsilon,\qquad \epsilon\sim\mathcal N(0, I), $$
#
# so that $\nabla_\phi\,\mathbb E_{q_\phi}[f(z)] = \mathbb E_\epsilon[\nabla_\phi f(\mu_\phi +
# \sigma_\phi\odot\epsilon)]$. In `vae_lib` this is `densities.reparameterize`, and
# a model's `elbo_terms(x, seed)` returns (distortion, rate) per image.
#
# **Check.** For the standard prior the rate has a closed form,
# $\mathrm{KL}(\mathcal N(\mu,\sigma^2)\,\|\,\mathcal N(0,1)) = \tfrac12\sum_d(\sigma_d^2 + \mu_d^2
# - 1 - \log\sigma_d^2)$ (`densities.kl_normal_standard`). For any other prior, `vae_lib` uses the
# one-sample Monte Carlo estimate $\log q(z\mid x) - \log p(z)$ with a reparameterized $z$. Averaged
# over many samples, both the estimate and its gradient should match the closed form. The
# gradient with respect to $\mu$ is $\mu$ itself.

# %% tags=["nbval-check-output"]
standard = StandardNormal()
mean = tf.Variable([[0.0, 0.0], [1.0, -2.0], [0.5, 3.0]])  # three posteriors q(z|x) in 2-D
logvar = tf.Variable([[0.0, 0.0], [-2.0, 0.5], [-4.0, -1.0]])
num_mc = 200_000

with tf.GradientTape(persistent=True) as tape:
    z = densities.reparameterize(mean, logvar, tf.constant([seed, 5], tf.int64), num_mc)  # (S, 3, 2)
    kl_mc = tf.reduce_mean(densities.log_normal_diag(z, mean, logvar) - standard.log_prob(z), axis=0)
    kl_exact = densities.kl_normal_standard(mean, logvar)
grad_mc = tape.gradient(kl_mc, mean)
grad_exact = tape.gradient(kl_exact, mean)

print(f"{'mu':>13s} {'log sigma^2':>13s} | {'KL exact':>8s} {'KL MC':>8s} | "
      f"{'dKL/dmu exact':>14s} {'dKL/dmu MC':>14s}")
for i in range(3):
    mu_s = ", ".join(f"{v:.1f}" for v in mean[i].numpy())
    lv_s = ", ".join(f"{v:.1f}" for v in logvar[i].numpy())
    ge = ", ".join(f"{v:5.1f}" for v in np.round(grad_exact[i].numpy(), 1) + 0.0)  # + 0.0: no "-0.0"
    gm = ", ".join(f"{v:5.1f}" for v in np.round(grad_mc[i].numpy(), 1) + 0.0)
    print(f"{mu_s:>13s} {lv_s:>13s} | {kl_exact[i].numpy():8.2f} {kl_mc[i].numpy():8.2f} | "
          f"{ge:>14s} {gm:>14s}")

# %% [markdown]
# The Monte Carlo column matches the closed form to about two decimals, and so does the gradient.
# The sampling noise was differentiated through, which is the reparameterization trick at work.
# With one sample per image (as in training) the estimate is noisy but unbiased. Where the KL has
# no closed form, this estimator is what lets us use *any* prior whose $\log p(z)$ we can
# evaluate, including a mixture.

# %% [markdown]
# ## 2. Why a standard Gaussian prior over-regularizes
#
# Average the rate over the $N$ training points and define the **aggregated posterior**
# $q(z) = \frac1N\sum_{n=1}^N q(z\mid x_n)$. Adding and subtracting $\log q(z)$ gives
#
# $$
# \frac1N\sum_{n}\mathrm{KL}\big(q(z\mid x_n)\,\|\,p(z)\big)
# \;=\; \underbrace{\frac1N\sum_n \mathrm{KL}\big(q(z\mid x_n)\,\|\,q(z)\big)}_{I_q(x;z)\;\le\;\log N}
# \;+\; \mathrm{KL}\big(q(z)\,\|\,p(z)\big).
# $$
#
# The first term is the mutual information between the data index and the code under the encoder.
# It is the information the code *has to* carry to reconstruct well. The second term is pure
# waste: it is how much the prior disagrees with where the encoder actually puts the codes.
# With $\mathcal N(0, I)$ as the prior, the ELBO pushes the aggregated posterior towards a
# standard Gaussian, which also squeezes the information the codes can carry. That is the
# over-regularization.
#
# For a **fixed encoder**, the prior appears in the objective only as
# $\frac1N\sum_n\mathbb E_{q(z\mid x_n)}[\log p(z)] = \mathbb E_{q(z)}[\log p(z)]$. This is
# maximized (the KL term made 0) by
#
# $$ p^\star(z) \;=\; q(z) \;=\; \frac1N\sum_{n=1}^N q(z\mid x_n). $$
#
# So the optimal prior is the aggregated posterior. It is a mixture of $N$ Gaussians (50,000 for
# MNIST). That is expensive to evaluate, and it would let the model overfit the training set.
# (The paper writes the same split as the average entropy of $q(z\mid x)$ plus the
# cross-entropy between $q(z)$ and $p(z)$. Only the cross-entropy involves the prior, and it is
# smallest when $p = q(z)$.)
#
# **A 1-D toy.** Five "data points" whose posteriors are spread out, as a trained encoder would
# place them. We compare the average rate under $\mathcal N(0,1)$ with the two terms of the
# decomposition, estimated by Monte Carlo with `densities.log_mixture_normal_diag` as $\log q(z)$.

# %% tags=["nbval-check-output"]
toy_mean = tf.constant([[-2.5], [-1.2], [0.3], [1.4], [3.0]])
toy_logvar = tf.fill([5, 1], float(np.log(0.4 ** 2)))
z = densities.reparameterize(toy_mean, toy_logvar, tf.constant([seed, 2], tf.int64), 100_000)  # (S, 5, 1)
log_q_cond = densities.log_normal_diag(z, toy_mean, toy_logvar)  # log q(z | x_n)
log_q_agg = densities.log_mixture_normal_diag(z, toy_mean, toy_logvar)  # log q(z), aggregated
log_p = densities.log_standard_normal(z)

rate_standard = float(tf.reduce_mean(densities.kl_normal_standard(toy_mean, toy_logvar)))
mutual_info = float(tf.reduce_mean(log_q_cond - log_q_agg))
marginal_kl = float(tf.reduce_mean(log_q_agg - log_p))
print(f"average rate with p(z) = N(0, 1), closed form : {rate_standard:6.2f} nats")
print(f"  I_q(x; z)                     (MC)          : {mutual_info:6.2f}   (log N = {np.log(5):.2f})")
print(f"  KL(q(z) || N(0, 1))           (MC)          : {marginal_kl:6.2f}")
print(f"  sum of the two                              : {mutual_info + marginal_kl:6.2f}")
print(f"average rate with p(z) = q(z), the optimum   : {mutual_info:6.2f}  "
      f"(saves {marginal_kl:.2f} nats per data point)")

# %%
grid_1d = np.linspace(-4.5, 4.5, 600, dtype=np.float32)[:, None]
fig, ax = plt.subplots(figsize=(8, 3.5))
for n in range(5):
    dens = np.exp(densities.log_normal_diag(grid_1d, toy_mean[n], toy_logvar[n]).numpy())
    ax.plot(grid_1d[:, 0], dens / 5, color="tab:blue", lw=0.8, alpha=0.6,
            label=r"$\frac{1}{N}q(z\mid x_n)$" if n == 0 else None)
ax.plot(grid_1d[:, 0], np.exp(densities.log_mixture_normal_diag(grid_1d, toy_mean, toy_logvar).numpy()),
        color="tab:blue", lw=2.5, label=r"aggregated posterior $q(z)$")
ax.plot(grid_1d[:, 0], np.exp(densities.log_standard_normal(grid_1d).numpy()), "k--", lw=2,
        label=r"standard prior $\mathcal{N}(0,1)$")
ax.set_title("The optimal prior is the aggregated posterior, not N(0, 1)")
ax.set_xlabel("z")
ax.set_ylabel("density")
ax.legend(loc="upper right", fontsize=9)
plt.show()

# %% [markdown]
# $\mathcal N(0,1)$ puts mass in the gaps between the posteriors ("holes": samples from there
# decode to nothing the data looks like). It also has too little mass in the tails where two of
# the posteriors sit. The mismatch costs $\mathrm{KL}(q(z)\,\|\,p(z))$ nats per data point in the
# ELBO. During training the encoder is then pulled towards $\mathcal N(0,1)$ at the expense of
# the distortion.

# %% [markdown]
# ## 3. The VampPrior: a mixture of variational posteriors
#
# The paper replaces the $N$ training points in $p^\star$ by $K \ll N$ learnable **pseudo-inputs**
# $u_1,\dots,u_K$, which are images with the same shape as $x$:
#
# $$ p_\lambda(z) \;=\; \frac1K\sum_{k=1}^K q_\phi(z\mid u_k). $$
#
# * It is a mixture of $K$ Gaussians. Their means and variances come from **the encoder itself**,
#   applied to the pseudo-inputs. The prior and the posterior are therefore *coupled*: they share
#   $\phi$, and the pseudo-inputs $\lambda = \{u_k\}$ are learned by backpropagating the ELBO
#   (in `vae_lib`: `VampPrior`, with the $u_k$ clipped into $[0,1]$ by a hardtanh).
# * $K$ sets the trade-off. $K=N$ with $u_k=x_k$ would be the optimal prior, at the cost of
#   overfitting and of $N$ encoder passes per step. A few hundred pseudo-inputs suffice (the
#   paper uses $K=500$).
# * The rate has no closed form any more, so it uses the Monte Carlo estimate from section 1.
#
# Variants compared in the paper (the reproduction's names for the classes of `vae_lib.priors`):
#
# | prior | $p(z)$ | learned prior parameters |
# |---|---|---|
# | `standard` | $\mathcal N(0, I)$ | none |
# | `mog` | $\frac1K\sum_k \mathcal N(z;\,m_k,\,\mathrm{diag}\,s_k^2)$ | $K$ means and variances, **not** tied to the encoder |
# | `vampprior` | $\frac1K\sum_k q_\phi(z\mid u_k)$ | $K$ pseudo-inputs $u_k$ (images) |
# | `vampprior_data` | same, with $u_k$ = $K$ random training images, kept fixed | none |
#
# The fixed `vampprior_data` is the reference report's variant. The paper's code instead starts
# the pseudo-inputs at $K$ training images plus a little noise and goes on learning them
# (`vampprior train --prior vampprior_data --trainable-pseudo-inputs`); the paper report shows
# both.
#
# The mixture of Gaussians (MoG) is the obvious non-coupled approximation of $q(z)$. In the
# paper it beats the standard prior but not the VampPrior. One reason: its components can
# drift away from where the encoder puts data, while the VampPrior's components are always
# posteriors of image-like inputs.
#
# **Hierarchical VampPrior VAE** (the paper's best model, `HVAE (L=2) + VampPrior`; in `vae_lib`
# `vae_lib.models.HVAE`, `vampprior train --model hvae`). It has two stochastic layers. The VampPrior sits on the top latent,
# $p(z_2) = \frac1K\sum_k q(z_2\mid u_k)$, with a conditional $p(z_1\mid z_2)$ below it, a decoder
# $p(x\mid z_1, z_2)$, and the encoder $q(z_1\mid x, z_2)\,q(z_2\mid x)$. The two layers help
# against inactive latent units. Its ELBO has the one-level form, with both latents drawn from
# the encoder ($z_2\sim q(z_2\mid x)$, then $z_1\sim q(z_1\mid x, z_2)$) and the log-weight
#
# $$ \log w = \log p(x\mid z_1, z_2) + \log p(z_1\mid z_2) + \log p(z_2)
# - \log q(z_1\mid x, z_2) - \log q(z_2\mid x). $$
#
# The ELBO is the expectation of $\log w$; the importance-sampled log-likelihood of section 5 is
# the same reduction of $S$ such weights as for the one-level VAE. So in `vae_lib` each model
# returns its $\log w$ (`log_weights`) and the estimators only reduce them.

# %% [markdown]
# ## 4. A 2-D latent toy: aggregated posterior vs. prior
#
# With a 2-D latent space we can *see* both sides of $\mathrm{KL}(q(z)\,\|\,p(z))$. We train three
# small VAEs on static (fixed-binarization) MNIST with the standard, VampPrior and MoG priors.
# The data, architecture, seed and budget are the same for all three; only the prior differs.
# Each one is the paper's VAE with `latent_dim=2` (`vae_lib.pipeline.build.build_model`), trained by the
# paper-protocol `vae_lib.pipeline.trainer.Trainer`:
# Adam on the negative ELBO, KL warm-up, and the best validation epoch kept.

# %%
data = load_dataset("static_mnist", data_dir)
subsets = reduced_splits(data, make_config("static_mnist", "standard", profile))  # the test split stays whole
train, valid = subsets.train, subsets.valid

# The static-MNIST test file has no labels, but its 10,000 images are the MNIST test set *sorted
# by digit* (`vae_lib.datasets` says how this is known). That gives the digit of each test image,
# used here only to colour the plots. Because of this ordering, every subset here is a random one
# (drawn with the seed), never the front of the file.
test_digit = static_mnist_test_digits()
rng = np.random.default_rng(seed)
plot_idx = rng.permutation(len(data.test))[:B["n_plot"]]  # random order: any prefix is random too
ll_idx = plot_idx[:B["n_ll"]]
print(data)
print(f"training on {len(train)}, validating on {len(valid)} (fixed-seed random subsets), "
      f"plotting {len(plot_idx)} random test images (digits {np.bincount(test_digit[plot_idx], minlength=10).tolist()})")

# %%
PRIOR_NAMES = ["standard", "vampprior", "mog"]
TITLES = {"standard": "standard N(0, I)", "vampprior": f"VampPrior (K={settings['components']})",
          "mog": f"mixture of Gaussians (K={settings['components']})"}
models, histories = {}, {}
for name in PRIOR_NAMES:
    config = make_config("static_mnist", name, profile, latent_dim=2, seed=seed)
    model = build_model(config, subsets)
    started = time.perf_counter()
    state = Trainer(model, config, progress=False).fit(train, valid)
    models[name], histories[name] = model, state.history
    print(f"{name:10s} {state.epoch:3d} epochs (best {state.best_epoch:3d}): "
          f"valid -ELBO {state.best_loss:7.2f} nats, {time.perf_counter() - started:5.1f} s")

# %% [markdown]
# How many parameters each prior adds to the same encoder and decoder:

# %% tags=["nbval-check-output"]
for name in PRIOR_NAMES:
    count = sum(int(np.prod(w.shape)) for w in models[name].prior.trainable_weights)
    print(f"{name:10s} prior parameters: {count:6d}")

# %%
fig, ax = plt.subplots(figsize=(7, 3.5))
for name in PRIOR_NAMES:
    h = histories[name]
    ax.plot([r["epoch"] for r in h], [r["valid_loss"] for r in h], marker="o", ms=3, label=TITLES[name])
ax.set_title("Validation negative ELBO during training (lower is better)")
ax.set_xlabel("epoch")
ax.set_ylabel("-ELBO (nats per image)")
ax.legend()
plt.show()

# %% [markdown]
# Now the picture. **Top row:** the aggregated posterior, shown as the encoder means
# $\mu_\phi(x)$ of random test images, coloured by digit. **Bottom row:** the prior density
# $\log p(z)$ on a grid, over the same region. For the VampPrior, the black crosses are the
# encoded means $\mu_\phi(u_k)$ of the pseudo-inputs, i.e. the mixture components. For the MoG,
# they are its learned means $m_k$.

# %%
x_plot = data.test[plot_idx]
posterior_means = {name: models[name].encoder(tf.constant(x_plot))[0].numpy() for name in PRIOR_NAMES}
component_means = {name: models[name].prior_params()[0].numpy()
                   for name in PRIOR_NAMES if name != "standard"}

fig, axes = plt.subplots(2, 3, figsize=(15, 9.5), layout="constrained")
for col, name in enumerate(PRIOR_NAMES):
    pts = posterior_means[name]
    centers = component_means.get(name)
    both = pts if centers is None else np.concatenate([pts, centers])
    lo, hi = np.percentile(both, [0.5, 99.5], axis=0)
    pad = 0.15 * (hi - lo)
    lo, hi = lo - pad, hi + pad
    gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], 160), np.linspace(lo[1], hi[1], 160))
    grid = np.stack([gx.ravel(), gy.ravel()], axis=1).astype(np.float32)
    log_prior = models[name].prior.log_prob(tf.constant(grid), models[name].prior_params()).numpy().reshape(gx.shape)

    ax = axes[0, col]
    sc = ax.scatter(pts[:, 0], pts[:, 1], c=test_digit[plot_idx], cmap="tab10", vmin=-0.5,
                    vmax=9.5, s=4, alpha=0.7)
    ax.set_title(f"{TITLES[name]}\naggregated posterior q(z): encoder means")
    ax = axes[1, col]
    top = log_prior.max()
    cf = ax.contourf(gx, gy, np.clip(log_prior, top - 12, None), levels=24, cmap="viridis")
    fig.colorbar(cf, ax=ax, label="log p(z) (clipped 12 nats below its max)", shrink=0.85)
    ax.set_title(f"{TITLES[name]}\nprior log-density log p(z)")
    if centers is not None:
        what = "pseudo-inputs' encoded means" if name == "vampprior" else "component means"
        for ax in axes[:, col]:
            ax.scatter(centers[:, 0], centers[:, 1], marker="x", c="k", s=25 if len(centers) <= 100 else 8,
                       lw=1, label=what)
        axes[0, col].legend(loc="lower right", fontsize=8)
    for ax in axes[:, col]:
        ax.set_xlim(lo[0], hi[0])
        ax.set_ylim(lo[1], hi[1])
        ax.set_xlabel("$z_1$")
        ax.set_ylabel("$z_2$")
fig.colorbar(sc, ax=axes[0, :], label="digit of the test image", ticks=range(10), shrink=0.85)
fig.suptitle(f"2-D latent VAEs on static MNIST, profile {profile!r}: aggregated posterior (top) "
             "vs. prior (bottom)")
plt.show()

# %% [markdown]
# What to look for (under `quick` and `paper`; the `smoke` models are barely trained):
# * **Standard prior.** The ELBO has squeezed the aggregated posterior into a round blob about
#   the size of $\mathcal N(0,I)$. The digits are packed tightly against each other, and the
#   prior still puts mass where few codes fall. Every digit class pays rate for the mismatch.
# * **VampPrior.** The aggregated posterior keeps its own shape: clusters per digit, with
#   whatever scale and position the encoder likes. The prior follows it, because its components
#   sit at encodings of pseudo-inputs, and these move to wherever the data's codes are. Areas
#   without data get low prior density. That is $\mathrm{KL}(q(z)\,\|\,p(z))$ made small.
# * **MoG.** The prior is also multi-modal, but its components are free parameters. They have to
#   track the encoder through the gradient of the rate alone, and some of them may end up where
#   there is no data.
#
# Below, the average rate of each model on the plotted test images is split as in section 2,
# using their aggregated posterior as $q(z)$. The estimate of $I_q(x;z)$ is capped at
# $\log N$, so compare the rows with each other rather than read absolute values. The last
# column is the part of the rate that a better prior can remove, and it should be smaller for
# the two mixture priors than for $\mathcal N(0, I)$.

# %%
x_agg = tf.constant(x_plot[:2000])  # a random subset (x_plot is in random order); N * M * N floats < 1 GB
M = 40_000 // len(x_agg)  # samples per image
print(f"{'prior':10s} {'rate':>8s} {'I_q(x;z)':>9s} {'KL(q(z)||p(z))':>15s}   (nats, "
      f"N = {len(x_agg)}, log N = {np.log(len(x_agg)):.2f})")
for name in PRIOR_NAMES:
    m, lv = models[name].encoder(x_agg)
    z = densities.reparameterize(m, lv, tf.constant([seed, 3], tf.int64), M)  # (M, N, 2)
    log_q_cond = densities.log_normal_diag(z, m, lv)
    log_q_agg = densities.log_mixture_normal_diag(z, m, lv)
    log_p = models[name].prior.log_prob(z, models[name].prior_params())
    rate = float(tf.reduce_mean(log_q_cond - log_p))
    info = float(tf.reduce_mean(log_q_cond - log_q_agg))
    print(f"{name:10s} {rate:8.2f} {info:9.2f} {rate - info:15.2f}")

# %% [markdown]
# The VampPrior's pseudo-inputs are images, and they can be drawn as such. Below them are
# their reconstructions (the decoder's mean at $\mu_\phi(u_k)$) and samples from each model,
# i.e. decoded $z \sim p(z)$. After a short training the pseudo-inputs still look like faint
# ghosts of their near-empty initialization, yet they reconstruct as clear digits: all that
# matters is where the encoder maps them. (With the paper's long training they come to look
# like digits.) Samples from the standard prior more often land in regions the aggregated
# posterior leaves empty, and then decode to blurry in-between shapes.

# %%
vamp = models["vampprior"]
n_show = min(20, settings["components"])
pseudo = vamp.prior.pseudo_inputs().numpy()[:n_show]
recon = vamp.reconstruct(tf.constant(pseudo)).numpy()
fig, axes = plt.subplots(5, 1, figsize=(10, 5.2), layout="constrained")
image_grid(pseudo, data.image_shape, ncols=20, ax=axes[0], title=f"first {n_show} pseudo-inputs u_k")
image_grid(recon, data.image_shape, ncols=20, ax=axes[1], title="their reconstructions")
for ax, name in zip(axes[2:], PRIOR_NAMES):
    samples = models[name].sample(20, tf.constant([seed, 4], tf.int64)).numpy()
    image_grid(samples, data.image_shape, ncols=20, ax=ax, title=f"samples, {TITLES[name]}")
fig.suptitle("VampPrior pseudo-inputs, and samples from each 2-D model")
plt.show()

# %% [markdown]
# ## 5. The importance-sampled log-likelihood
#
# Models are compared by their test log-likelihood $\log p(x)$, not by the ELBO, because the
# ELBO's gap depends on how well the encoder fits. With the encoder as the proposal and
# $z_s\sim q(z\mid x)$,
#
# $$
# \log p(x) \;\approx\; \log\frac1S\sum_{s=1}^S \frac{p(x\mid z_s)\,p(z_s)}{q(z_s\mid x)}
# \;=\; \operatorname*{logsumexp}_{s}\big[\log p(x\mid z_s) + \log p(z_s) - \log q(z_s\mid x)\big]
# - \log S .
# $$
#
# The ratio inside is an unbiased estimate of $p(x)$. Its log is a **lower bound in expectation**
# (the IWAE bound $\mathcal L_S$). It equals the ELBO for $S=1$, never decreases with $S$ (in
# expectation), and converges to $\log p(x)$ as $S\to\infty$. In `vae_lib` this is
# `estimators.log_likelihood(model, images, num_samples=S)` (alias `iwae_bound`). The paper
# reports it with $S = 5000$; the reduced budgets of this project use fewer samples, and say so.
# (The curve below needs a separate compiled estimator per $S$, hence its cost.)
#
# Below, the estimate on the same random test images for growing $S$, and the ELBO as a
# reference line.

# %%
x_ll = data.test[ll_idx]
ll_curves, elbos = {}, {}
started = time.perf_counter()
for name in PRIOR_NAMES:
    ll_curves[name] = [float(np.mean(estimators.log_likelihood(models[name], x_ll, num_samples=S,
                                                               seed=seed))) for S in B["S"]]
    elbos[name] = float(np.mean(estimators.elbo(models[name], x_ll, seed=seed)))
print(f"{len(x_ll)} test images, mean over images, nats "
      f"({time.perf_counter() - started:.1f} s)")
print(f"{'prior':10s} {'ELBO':>8s} " + " ".join(f"{'S=' + str(S):>8s}" for S in B["S"]))
for name in PRIOR_NAMES:
    print(f"{name:10s} {elbos[name]:8.2f} " + " ".join(f"{v:8.2f}" for v in ll_curves[name]))

# %%
fig, ax = plt.subplots(figsize=(7, 4))
for i, name in enumerate(PRIOR_NAMES):
    color = f"C{i}"
    ax.plot(B["S"], ll_curves[name], marker="o", color=color, label=f"{TITLES[name]}: IS estimate")
    ax.axhline(elbos[name], color=color, ls="--", lw=1, label=f"{name}: ELBO")
ax.set_xscale("log")
ax.set_xlabel("number of importance samples S")
ax.set_ylabel("mean log p(x) estimate (nats)")
ax.set_title(f"Importance-sampled log-likelihood vs. S ({len(x_ll)} test images)")
ax.legend(fontsize=8, ncol=2)
plt.show()

# %% [markdown]
# The estimates rise with $S$ and flatten out. For $S=1$ they match the ELBO up to Monte Carlo
# noise; the ELBO line uses the closed-form KL for the standard prior and a different sample.
# The total rise estimates the average gap $\mathrm{KL}(q(z\mid x)\,\|\,p(z\mid x))$ left by the
# Gaussian encoder. This is why models are compared on the importance-sampled estimate with
# large $S$ and not on the ELBO: two models with the same ELBO can have different gaps. The
# change between the last two values of $S$ shows how far from converged the estimate still is,
# and why the paper uses $S=5000$.
#
# With a 2-D latent space, all models are far from the paper's numbers (roughly $-86$ to $-89$
# nats on static MNIST for its one-layer VAE with 40 latent dimensions), and the differences
# between priors are small and depend on the budget. The paper's comparison (40-D latent, $K=500$, $S=5000$) is run by the
# experiment notebook and the project report.


# %% [markdown]
# ## 6. Grey images: the discretized logistic likelihood, and bits per dimension
#
# Frey Faces are 8-bit grey images, so $p(x\mid z)$ must give a probability to each of the 256
# grey levels of each pixel, not a Bernoulli probability. The paper (after PixelCNN++ and IAF)
# uses a **discretized logistic**. In `vae_lib`, with the decoder's mean $\mu$ and log-scale
# $\log s$ for a pixel, and $x = k/255$,
#
# $$ P(x) = \sigma\Big(\frac{x + h - \mu}{s}\Big) - \sigma\Big(\frac{x - h - \mu}{s}\Big),
# \qquad h = \frac{1}{2\cdot 255}, $$
#
# the logistic mass of the bin around $x$ (`densities.log_discretized_logistic`); the first and
# last bins reach out to $-\infty$ and $+\infty$, so the 256 probabilities sum to one for every
# $(\mu, s)$. The paper's code puts grey level $k$ in the bin $[k/256, (k+1)/256]$, with no open
# ends: the mass beyond the edges is lost. Below, the 256 probabilities for a few decoder outputs, their sum
# (both ways), and how much the closed edges lose.

# %% tags=["nbval-check-output"]
levels = np.arange(256) / 255.0
cases = [(0.5, -3.0), (0.05, -4.5), (0.97, -2.0), (0.5, 0.0)]  # (mean, log-scale)
fig, ax = plt.subplots(figsize=(8, 3.2))
print(f"{'mean':>5s} {'log s':>6s} | {'sum, vae_lib':>13s} {'sum, closed edges':>18s}")
for mu, log_s in cases:
    x = tf.constant(levels[:, None], tf.float32)
    log_p = densities.log_discretized_logistic(x, tf.fill([256, 1], mu), tf.fill([256, 1], log_s)).numpy()
    sigmoid = lambda t: 1 / (1 + np.exp(-t))  # noqa: E731 (the paper code's bins, in numpy)
    lower = np.arange(256) / 256  # grey level k's bin in the paper's code: [k/256, (k+1)/256]
    closed = sigmoid((lower + 1 / 256 - mu) / np.exp(log_s)) - sigmoid((lower - mu) / np.exp(log_s))
    print(f"{mu:5.2f} {log_s:6.1f} | {np.exp(log_p).sum():13.4f} {closed.sum():18.4f}")
    ax.plot(levels * 255, np.exp(log_p), label=f"mean {mu}, log-scale {log_s}")
ax.set_xlabel("grey level k")
ax.set_ylabel("P(x = k / 255)")
ax.set_yscale("log")
ax.set_ylim(1e-6, 1)
ax.set_title("Discretized logistic over 256 grey levels (open-ended edge bins)")
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# The two versions differ where the logistic reaches past 0 or 1: with a mean near an edge (dark
# background, bright skin) or a wide scale, the closed edges lose much of the mass, so the same
# model scores lower under them. The log-scale is clipped to $[-4.5, 0]$ as in the paper's code, so
# no single grey level can get a probability above about $1/(4s)$ of its bin width.
#
# **Bits per dimension.** A log-likelihood in nats per image depends on the image size. Dividing
# by the number of pixels $D$ and converting to bits gives bits per dimension,
# $\text{bits/dim} = -\log p(x) / (D \ln 2)$ (`estimators.bits_per_dim`). A model that puts
# the uniform $1/256$ on every grey level codes 8 bits per pixel; anything useful codes fewer.

# %% tags=["nbval-check-output"]
D = 28 * 20  # a Frey face
uniform = -D * np.log(256.0)
print(f"uniform over 256 levels: {uniform:9.2f} nats per image = {estimators.bits_per_dim(uniform, D):.3f} bits/dim")
for nats in (-2000.0, -1750.0):
    print(f"log p(x) = {nats:9.2f} nats per image = {estimators.bits_per_dim(nats, D):.3f} bits/dim")

# %% [markdown]
# **Summary.**
# * The prior enters the ELBO only through the rate. The average rate is $I(x;z) +
#   \mathrm{KL}(q(z)\,\|\,p(z))$, so the best prior for a given encoder is the aggregated
#   posterior.
# * The VampPrior approximates it by $\frac1K\sum_k q(z\mid u_k)$, a mixture of the encoder's
#   posteriors at $K$ learned pseudo-inputs. It is cheap, coupled to the encoder, and multimodal.
# * Log-likelihoods are estimated by importance sampling with $S$ samples from $q(z\mid x)$. The
#   estimate is a lower bound that tightens as $S$ grows.
# * Grey images get a discretized logistic over their 256 levels (section 6); bits per dimension
#   make log-likelihoods comparable across image sizes.

# %%
print(f"notebook ran in {time.perf_counter() - notebook_started:.0f} s (profile {profile!r})")
