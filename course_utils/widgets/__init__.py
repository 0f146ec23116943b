"""Interactive widgets for the lessons: ipywidgets core and matplotlib only, one module per lesson widget.

==============================  =======  ======================================================
module                          lesson   public names
==============================  =======  ======================================================
:mod:`.denoiser`                01       ``DenoiserExplorer``, ``denoiser_explorer``
:mod:`.forward_diffusion`       02       ``ForwardDiffusionExplorer``, ``forward_diffusion_explorer``
:mod:`.ink_drop`                02       ``ink_drop_animation``, ``ink_drop_frame_steps``
:mod:`.posterior`               03       ``GaussianMixture1D``, ``empirical_posterior``,
                                         ``PosteriorExplorer``, ``posterior_explorer``
:mod:`.reverse_trajectory`      04       ``Trajectory``, ``collect_trajectory``,
                                         ``ReverseTrajectoryExplorer``,
                                         ``reverse_trajectory_explorer``, ``reverse_process_animation``
:mod:`.guidance`                06       ``GuidanceExplorer``, ``guidance_explorer``, ``guidance_sweep``
:mod:`.text_to_image`           08       ``TextToImageExplorer``, ``text_to_image_explorer``, ``prompt_sweep``
:mod:`.cascade`                 09       ``AugmentationExplorer``, ``augmentation_explorer``, ``side_by_side``
:mod:`._base`                   all      the figure/render mixin ``_FigureWidget`` and image helpers
==============================  =======  ======================================================

Every public name is re-exported here: ``from course_utils.widgets import forward_diffusion_explorer``.
A new lesson's widget is a new module beside these, added to the imports below.

ipywidgets is imported inside the functions, so importing ``course_utils`` never needs Jupyter. Only API
common to ipywidgets 7.7 (Colab) and 8 is used: ``IntSlider``, ``ToggleButtons``, ``Image``, ``HBox``,
``VBox``, ``Layout``, ``Dropdown``, ``SelectionSlider``, ``Text``, ``Button``, ``HTML`` and ``observe(handler, names="value")``.
Everything a widget shows is computed once up front; moving a control only calls ``set_data`` on
existing artists and re-renders one small PNG.
"""
from __future__ import annotations

from .cascade import AugmentationExplorer, augmentation_explorer, side_by_side
from .denoiser import DenoiserExplorer, denoiser_explorer
from .forward_diffusion import ForwardDiffusionExplorer, forward_diffusion_explorer
from .guidance import GuidanceExplorer, guidance_explorer, guidance_sweep
from .ink_drop import ink_drop_animation, ink_drop_frame_steps
from .posterior import GaussianMixture1D, PosteriorExplorer, empirical_posterior, posterior_explorer
from .reverse_trajectory import (ReverseTrajectoryExplorer, Trajectory, collect_trajectory,
                                 reverse_process_animation, reverse_trajectory_explorer)
from .text_to_image import TextToImageExplorer, prompt_sweep, text_to_image_explorer

__all__ = [
    "DenoiserExplorer", "denoiser_explorer",                                           # lesson 01
    "ForwardDiffusionExplorer", "forward_diffusion_explorer",                           # lesson 02
    "ink_drop_animation", "ink_drop_frame_steps",                                       # lesson 02
    "GaussianMixture1D", "empirical_posterior", "PosteriorExplorer", "posterior_explorer",  # lesson 03
    "Trajectory", "collect_trajectory", "ReverseTrajectoryExplorer", "reverse_trajectory_explorer",
    "reverse_process_animation",                                                        # lesson 04
    "GuidanceExplorer", "guidance_explorer", "guidance_sweep",                          # lesson 06
    "TextToImageExplorer", "text_to_image_explorer", "prompt_sweep",                    # lesson 08
    "AugmentationExplorer", "augmentation_explorer", "side_by_side",                    # lesson 09
]
